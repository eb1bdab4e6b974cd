"""One MPyC party of a run: ``python -m ptx_chain_node.mpc.party --job job.json``.

The party checks its job before touching the network (every program reference is
resolved against this node's catalogue and its hash compared; every input share vector
must be this party's, for that program, field and length), then starts MPyC with an
explicit argv (``-M m -I i -P host:port ... [-T t] [--ssl]``), wraps its shares as secure
numbers, runs the programs and writes **its own share of each output**, re-randomised,
to the job's output file. It never opens a result: only whoever gathers ``t + 1`` result
files learns it.

Every output is multiplied by the secure guard bit and the whole output vector is then
reshared (MPyC's ``_reshare``, [GRR98]): each output share is a fresh random degree-``t``
sharing, so the shares reveal nothing beyond the result itself.

Exit status: 0 done; 2 bad job or inputs (nothing was started); 3 a peer was unreachable
or disconnected; 4 time limit reached; 1 anything else. The reason is printed on stderr
as one line ``ptx-mpc party <i>: <reason>``.

Start-up is on the critical path of every run (m such processes share the machine in the
embedded mode), so this module imports only the standard library at load time: :func:`main`
first limits BLAS to one thread (numpy's default thread pool only costs CPU here) and then
loads the catalogue, numpy and MPyC. On exit the process skips the interpreter's teardown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptx_chain_node.errors import PtxError

if TYPE_CHECKING:
    from ptx_chain_node.mpc.catalogue import BoundProgram
    from ptx_chain_node.mpc.job import PartyJob
    from ptx_chain_node.mpc.sharing import ShareVector

#: The progress line a party prints once all parties are connected.
CONNECTED = "connected to all parties"
EXIT_OK, EXIT_INTERNAL, EXIT_BAD_JOB, EXIT_PEER, EXIT_TIMEOUT = 0, 1, 2, 3, 4
_WATCH_INTERVAL = 0.05


class PartyFailure(Exception):
    """A failure with its exit status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PreparedComputation:
    """A computation whose program and input shares passed all checks."""

    bound: BoundProgram
    inputs: list[list[int]]


def _report(index: int | str, message: str) -> None:
    print(f"ptx-mpc party {index}: {message}", file=sys.stderr, flush=True)


def prepare(job: PartyJob) -> list[PreparedComputation]:
    """Resolve programs (hash check) and load and check this party's input shares."""
    from ptx_chain_node.mpc import catalogue
    from ptx_chain_node.mpc.sharing import ShareVector

    prepared = []
    for c, computation in enumerate(job.computations):
        bound = catalogue.resolve(computation.program)
        inputs = []
        for j, path in enumerate(computation.inputs):
            where = f"computations[{c}].inputs[{j}]"
            try:
                vector = ShareVector.load(path)
            except OSError as exc:
                raise PartyFailure(EXIT_BAD_JOB, f"{where}: cannot read {path}: {exc}") from None
            if (vector.party, vector.m, vector.t) != (job.index, job.m, job.t):
                raise PartyFailure(
                    EXIT_BAD_JOB,
                    f"{where}: shares are for node {vector.party} of (t={vector.t}, "
                    f"m={vector.m}), this is node {job.index} of (t={job.t}, m={job.m})",
                )
            bound.check_input(vector, where)
            inputs.append(vector.values)
        prepared.append(PreparedComputation(bound, inputs))
    return prepared


def mpyc_argv(job: PartyJob) -> list[str]:
    """The MPyC command line of this party (MPyC reads its options from ``sys.argv``)."""
    argv = [sys.argv[0] if sys.argv else "party", "-M", str(job.m), "-I", str(job.index)]
    for address in job.parties:
        argv += ["-P", address]
    argv += ["-T", str(job.t), "--no-log"]
    if job.ssl:
        argv.append("--ssl")
    return argv


def _lost_peer(rt: Any) -> PartyFailure | None:
    """A failure naming the first party whose connection is gone, if any."""
    for peer in rt.parties:
        if peer.pid == rt.pid:
            continue
        protocol = peer.protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            reason = f"lost the connection to party {peer.pid} ({peer.host}:{peer.port})"
            return PartyFailure(EXIT_PEER, reason)
    return None


async def _watch_peers(rt: Any) -> None:
    """Raise as soon as a connection to another party is lost."""
    while True:
        failure = _lost_peer(rt)
        if failure is not None:
            raise failure
        await asyncio.sleep(_WATCH_INTERVAL)


async def _compute(
    rt: Any, job: PartyJob, computations: Sequence[PreparedComputation]
) -> list[ShareVector]:
    from ptx_chain_node.mpc.sharing import ShareVector

    results = []
    for computation in computations:
        started = time.monotonic()
        bound = computation.bound
        stype = bound.program.stype.sectype(rt)
        outcome = await bound.program.compute(rt, stype, bound.params, computation.inputs)
        ok = outcome.ok
        guarded = [ok * value for value in outcome.values] + [ok]
        shares = await rt.gather(rt._reshare(guarded))  # fresh random degree-t sharings
        results.append(
            ShareVector(
                party=job.index,
                m=job.m,
                t=job.t,
                modulus=bound.program.stype.modulus,
                values=[int(s.value) for s in shares],
                program=bound.hash,
                public=dict(outcome.public),
            )
        )
        _report(job.index, f"{bound.name} computed in {time.monotonic() - started:.3f} s")
    return results


async def _session(
    rt: Any, job: PartyJob, computations: Sequence[PreparedComputation]
) -> list[ShareVector]:
    try:
        await rt.start()
    except OSError as exc:
        raise PartyFailure(EXIT_PEER, f"cannot listen or connect: {exc}") from None
    _report(job.index, CONNECTED)
    watchdog = asyncio.ensure_future(_watch_peers(rt))
    work = asyncio.ensure_future(_compute(rt, job, computations))
    try:
        await asyncio.wait({watchdog, work}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            watchdog.result()  # raises the peer failure
        if work.exception() is not None and (lost := _lost_peer(rt)) is not None:
            raise lost  # e.g. a send on a connection that just went away
        results = work.result()
    finally:
        watchdog.cancel()
        work.cancel()
    await rt.shutdown()
    return results


async def _run(
    rt: Any, job: PartyJob, computations: Sequence[PreparedComputation], timeout: float
) -> None:
    try:
        results = await asyncio.wait_for(_session(rt, job, computations), timeout)
    except TimeoutError:
        missing = [
            f"{p.pid} ({p.host}:{p.port})"
            for p in rt.parties
            if p.pid != rt.pid and p.protocol is None
        ]
        detail = f"; not connected: parties {', '.join(missing)}" if missing else ""
        raise PartyFailure(
            EXIT_TIMEOUT, f"no result within the time limit ({timeout:.1f} s){detail}"
        ) from None
    from ptx_chain_node.mpc.job import write_result

    write_result(job.output, job.run_id, job.index, results)


def run(job: PartyJob) -> None:
    """Run one party of ``job`` in this process (raises :class:`PartyFailure`)."""
    try:
        computations = prepare(job)
    except PtxError as exc:
        problems = "; ".join(f"{p.field}: {p.problem}" for p in exc.problems)
        raise PartyFailure(EXIT_BAD_JOB, f"{exc.message} ({problems})") from None
    job = replace(job, output=job.output.resolve())
    timeout = job.timeout if job.deadline is None else min(job.timeout, job.deadline - time.time())
    if timeout <= 0:
        raise PartyFailure(EXIT_TIMEOUT, "the run's deadline passed before this party started")
    if job.ssl and job.ssl_dir is not None:
        os.chdir(job.ssl_dir)  # MPyC reads .config/ relative to the working directory
    sys.argv = mpyc_argv(job)
    from mpyc.runtime import mpc  # reads sys.argv once, at first import

    try:
        mpc.run(_run(mpc, job, computations, timeout))
    except RuntimeError:
        # MPyC stops the event loop when one of its coroutines fails, e.g. on a send to a
        # party whose connection just went away; report that rather than the symptom.
        lost = _lost_peer(mpc)
        if lost is not None:
            raise lost from None
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: run the job file, report failures on stderr, return the status."""
    parser = argparse.ArgumentParser(prog="python -m ptx_chain_node.mpc.party")
    parser.add_argument("--job", type=Path, required=True, help="the party job (JSON)")
    args = parser.parse_args(argv)
    index = "?"
    started = time.monotonic()
    # Before numpy is first imported (by the catalogue): its BLAS threads would only compete
    # with the other parties for the cores. An explicit setting from the environment wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        from ptx_chain_node.mpc.job import PartyJob

        job = PartyJob.load(args.job.resolve())
        index = str(job.index)
        run(job)
    except PartyFailure as exc:
        _report(index, exc.reason)
        return exc.status
    except PtxError as exc:
        _report(index, exc.message)
        return EXIT_BAD_JOB
    except Exception as exc:  # noqa: BLE001 (the process boundary: report, never hang)
        _report(index, f"{type(exc).__name__}: {exc}")
        return EXIT_INTERNAL
    _report(index, f"done in {time.monotonic() - started:.3f} s")
    return EXIT_OK


if __name__ == "__main__":
    status = main()
    # Leave at once. On failure MPyC may still hold half-open connections and pending tasks,
    # and a failed party should not linger past its time limit while they unwind. On success
    # the result file is written and renamed into place, and the interpreter's teardown
    # (collecting MPyC's and numpy's objects) would only delay the run by 0.1-0.3 s.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
