"""Run a computation with m local MPyC party processes on 127.0.0.1 (the embedded mode).

:class:`LocalRun` writes each party's input shares and job file, starts ``m`` processes of
``python -m ptx_chain_node.mpc.party`` on free loopback ports, waits for all of them and
collects their result shares. If a party fails, the others get a short grace period to
report their own view (e.g. "lost the connection to party 1") and are then stopped; the
run raises :class:`~.errors.RunFailed` with every party's reason. At the time limit all
parties are stopped and :class:`~.errors.RunTimeout` is raised.

All parties on one machine run by one operator give correct results but **no
confidentiality**: that operator holds every share. Use it for development, tests and a
trusted single host; the node service starts one ``party.py`` per independent node instead.

:func:`reconstruct` is the output party's side: any ``t + 1`` result shares to the
decoded result.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from ptx_chain_node.mpc import catalogue
from ptx_chain_node.mpc.catalogue import BoundProgram, ProgramRef, ProgramResult
from ptx_chain_node.mpc.errors import RunFailed, RunTimeout
from ptx_chain_node.mpc.job import Computation, PartyJob, read_result
from ptx_chain_node.mpc.party import CONNECTED
from ptx_chain_node.mpc.sharing import ShareVector, check_parties

log = structlog.get_logger(__name__)

EMBEDDED_WARNING = (
    "all MPC parties run on this machine under one operator: results are correct but "
    "there is NO confidentiality (development / trusted-host mode)"
)
_warned = False


@dataclass(frozen=True)
class LocalComputation:
    """A program reference and the input shares: ``inputs[j][i]`` is input party j's vector
    for node i (what :meth:`BoundProgram.share` returns, per input party)."""

    program: ProgramRef
    inputs: Sequence[Sequence[ShareVector]]


@dataclass(frozen=True)
class PartyExit:
    """How one party process ended."""

    index: int
    returncode: int
    reason: str
    log: str = ""

    def describe(self) -> str:
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"party {self.index} was killed by signal {name}"
        return f"party {self.index} (exit {self.returncode}): {self.reason or 'no reason given'}"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def _last_reason(stderr: str, index: int) -> str:
    prefix = f"ptx-mpc party {index}: "
    lines = stderr.splitlines()
    for line in reversed(lines):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return lines[-1] if lines else ""


class LocalRun:
    """``m`` local party processes for one run; use ``async with`` or :func:`run_local`."""

    def __init__(
        self,
        computations: Sequence[LocalComputation],
        *,
        timeout: float = 60.0,
        workdir: Path | None = None,
        grace: float = 2.0,
        python: str = sys.executable,
    ) -> None:
        if not computations or not all(c.inputs for c in computations):
            raise RunFailed("a run needs at least one computation with inputs", 400)
        self.computations = list(computations)
        self.m = len(computations[0].inputs[0])
        self.t = check_parties(self.m, computations[0].inputs[0][0].t)
        for c in self.computations:
            for vectors in c.inputs:
                if [v.party for v in vectors] != list(range(self.m)):
                    raise RunFailed("each input needs one share vector per node, in order", 400)
        self.timeout = timeout
        #: Parties stop themselves this long before the run's deadline, to report why.
        self.report_margin = min(2.0, timeout / 4)
        self.grace = grace
        self.python = python
        self.run_id = uuid.uuid4().hex
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ptx-mpc-"))
        self.processes: list[asyncio.subprocess.Process] = []
        #: How each party ended (with its stderr), filled in by :meth:`wait`.
        self.exits: list[PartyExit] = []
        self._outputs: list[Path] = []
        self._deadline = 0.0
        self._wall_deadline = 0.0
        self._readers: list[asyncio.Future[PartyExit]] = []
        self._connected = 0
        self._all_connected = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        """Process ids of the parties, in party order."""
        return [p.pid for p in self.processes]

    def _write_jobs(self) -> list[Path]:
        ports = free_ports(self.m)
        parties = [f"127.0.0.1:{port}" for port in ports]
        jobs = []
        for i in range(self.m):
            home = self.workdir / f"party{i}"
            home.mkdir(parents=True, exist_ok=True)
            computations = []
            for c, computation in enumerate(self.computations):
                paths = []
                for j, vectors in enumerate(computation.inputs):
                    path = home / f"input-{c}-{j}.json"
                    vectors[i].dump(path)
                    paths.append(path)
                computations.append(Computation(computation.program, paths))
            output = home / "result.json"
            job = PartyJob(
                run_id=self.run_id,
                index=i,
                parties=parties,
                computations=computations,
                output=output,
                timeout=self.timeout,
                deadline=self._wall_deadline,
                threshold=self.t,
            )
            job.dump(home / "job.json")
            jobs.append(home / "job.json")
            self._outputs.append(output)
        return jobs

    async def start(self) -> None:
        """Write the files and start the ``m`` party processes."""
        global _warned
        if not _warned:
            log.warning("mpc.embedded_mode", detail=EMBEDDED_WARNING)
            _warned = True
        self._deadline = time.monotonic() + self.timeout
        self._wall_deadline = time.time() + self.timeout - self.report_margin
        jobs = await asyncio.to_thread(self._write_jobs)
        for job in jobs:
            self.processes.append(
                await asyncio.create_subprocess_exec(
                    self.python,
                    "-m",
                    "ptx_chain_node.mpc.party",
                    "--job",
                    str(job),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            )
        self._readers = [asyncio.ensure_future(self._finish(i)) for i in range(self.m)]
        log.info("mpc.local_run.started", run_id=self.run_id, m=self.m, pids=self.pids)

    async def _finish(self, index: int) -> PartyExit:
        process = self.processes[index]
        assert process.stderr is not None
        lines = []
        connected = f"ptx-mpc party {index}: {CONNECTED}"
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if line == connected:
                self._connected += 1
                if self._connected == self.m:
                    self._all_connected.set()
        returncode = await process.wait()
        text = "\n".join(lines)
        return PartyExit(index, returncode, _last_reason(text, index), text)

    async def connected(self) -> None:
        """Return once every party has connected to all others (the MPC has begun)."""
        await self._all_connected.wait()

    async def wait(self) -> list[list[ShareVector]]:
        """Wait for all parties: ``result[c][i]`` is node i's share vector of computation c."""
        started = time.monotonic()
        pending = set(self._readers)
        finished: list[PartyExit] = []
        failed = False
        try:
            while pending:
                remaining = self._deadline - time.monotonic()
                if failed:
                    remaining = min(remaining, self.grace)
                if remaining <= 0:
                    break
                done, pending = await asyncio.wait(
                    pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    finished.append(task.result())
                    failed = failed or finished[-1].returncode != 0
                if not done:
                    break
        finally:
            await self.close_processes()
        stopped = [await task for task in pending]  # their stderr ends once they are killed
        self.exits = sorted(finished + stopped, key=lambda e: e.index)
        if failed:
            finished.sort(key=lambda e: (e.returncode >= 0, e.index))  # killed ones first
            problems = [e.describe() for e in finished if e.returncode != 0]
            raise RunFailed("MPC run failed: " + "; ".join(problems))
        if stopped:
            late = "; ".join(
                f"party {e.index} did not finish (last: {e.reason or 'no output'})"
                for e in sorted(stopped, key=lambda e: e.index)
            )
            raise RunTimeout(f"MPC run exceeded {self.timeout:g} s: {late}")
        per_party = await asyncio.to_thread(lambda: [read_result(p) for p in self._outputs])
        log.info("mpc.local_run.done", run_id=self.run_id, seconds=time.monotonic() - started)
        return [[per_party[i][c] for i in range(self.m)] for c in range(len(self.computations))]

    async def close_processes(self) -> None:
        """Stop every party process still running and reap it."""
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                await process.wait()

    async def close(self) -> None:
        """Stop the processes and remove the working directory if this run created it."""
        await self.close_processes()
        await asyncio.gather(*self._readers, return_exceptions=True)
        if self._own_workdir:
            await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    async def __aenter__(self) -> LocalRun:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def run_local(
    computations: Sequence[LocalComputation],
    *,
    timeout: float = 60.0,
    workdir: Path | None = None,
) -> list[list[ShareVector]]:
    """Run computations in one MPyC session of local parties; result shares per computation."""
    async with LocalRun(computations, timeout=timeout, workdir=workdir) as run:
        return await run.wait()


def reconstruct(
    program: BoundProgram | ProgramRef, shares: Sequence[ShareVector], verify: bool = True
) -> ProgramResult:
    """Decode result shares (any ``t + 1``; extra shares are checked when ``verify``)."""
    bound = catalogue.resolve(program) if isinstance(program, ProgramRef) else program
    return bound.reconstruct(shares, verify=verify)
