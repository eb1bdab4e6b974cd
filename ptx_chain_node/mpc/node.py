"""One MPyC compute node: holds its share of every input, runs its party of each run.

A node knows its index ``i``, the MPyC addresses of all ``m`` parties and a secret shared
with the coordinator (see :mod:`.node_tokens`). Input parties upload share vector ``i`` of
their inputs here (upload token); the coordinator asks all ``m`` nodes to run a catalogued
program on a list of secret ids under one run id (coordinator token); each node then
starts ``python -m ptx_chain_node.mpc.party`` with its own shares, and keeps the party's
re-randomised result share for the collaboration's output parties (result token).

- Uploads are durable before they are acknowledged, and idempotent per secret id.
- Runs are idempotent per run id and one at a time (the MPyC port is the node's).
- A run ends ``done`` (its input shares are deleted unless ``retain_shares``) or
  ``failed`` with the party's one-line reason (peer lost, time limit, bad input); the
  shares stay for a retry under a new run id.
- A node that restarts fails the runs it had in progress.

No share value, token or result reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from ptx_chain_node.errors import NotFoundError, Problem, PtxError
from ptx_chain_node.mpc import catalogue
from ptx_chain_node.mpc.catalogue import ProgramRef
from ptx_chain_node.mpc.job import Computation, PartyJob
from ptx_chain_node.mpc.node_tokens import NodeTokens, Scope
from ptx_chain_node.mpc.share_store import RunRecord, RunState, ShareInfo, ShareStore
from ptx_chain_node.mpc.sharing import ShareVector, check_parties

log = structlog.get_logger(__name__)

#: Secret and run ids: printable, URL-safe, like the coordinator's secret ids.
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")


def check_id(value: object, field_name: str) -> str:
    """A secret, run or collaboration id (1-200 of ``A-Z a-z 0-9 _ . : -``), else 422."""
    if not isinstance(value, str) or not 0 < len(value) <= 200 or not set(value) <= _ID_CHARS:
        raise PtxError(
            f"{field_name} is not a valid id",
            422,
            [Problem(field_name, "1-200 of A-Z a-z 0-9 _ . : -")],
        )
    return value


@dataclass(frozen=True)
class NodeConfig:
    """One node: its index, all parties' MPyC ``host:port`` addresses, where it keeps data."""

    index: int
    parties: list[str]
    data_dir: Path
    threshold: int | None = None
    ssl_dir: Path | None = None
    retain_shares: bool = False
    run_timeout: float = 120.0
    python: str = sys.executable

    @property
    def m(self) -> int:
        return len(self.parties)

    @property
    def t(self) -> int:
        return check_parties(self.m, self.threshold)

    def validate(self) -> None:
        """Check the party list and index (:class:`PtxError`)."""
        PartyJob(
            "check",
            self.index,
            self.parties,
            [Computation(ProgramRef("x", "x", {}, ""), [Path("x")])],
            Path("x"),
            threshold=self.threshold,
            ssl=self.ssl_dir is not None,
            ssl_dir=self.ssl_dir,
        ).validate()


def _reason(stderr: str, index: int) -> str:
    prefix = f"ptx-mpc party {index}: "
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(prefix) and not line[len(prefix) :].startswith("done"):
            return line[len(prefix) :]
    return lines[-1] if lines else "no reason given"


class ComputeNode:
    """The node's use cases (the HTTP routes are a thin shell over these)."""

    def __init__(self, config: NodeConfig, tokens: NodeTokens, store: ShareStore | None = None):
        config.validate()
        self.config = config
        self.tokens = tokens
        self.store = store or ShareStore(config.data_dir / "shares.db")
        self._active: str | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._cancelled: set[str] = set()

    @property
    def index(self) -> int:
        return self.config.index

    async def start(self) -> None:
        """Open the store; runs left running by a previous process are failed."""
        await self.store.open()
        failed = await self.store.fail_running(
            f"node {self.index} restarted during the run; start it again"
        )
        if failed:
            log.warning("node.runs_failed_at_start", node=self.index, count=failed)

    async def stop(self) -> None:
        """Stop the party processes of runs in progress and close the store."""
        for process in list(self._processes.values()):
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.close()

    # -- uploads ---------------------------------------------------------------------------

    async def upload(self, token: str | None, secret_id: str, body: Any) -> tuple[ShareInfo, bool]:
        """Store an input party's share vector for this node; True when it was new."""
        check_id(secret_id, "path.secret_id")
        if not isinstance(body, dict):
            raise PtxError("body must be an object", 400, [Problem("body", "not an object")])
        collaboration_id = check_id(body.get("collaboration_id"), "collaboration_id")
        claims = self.tokens.verify(token, Scope.UPLOAD, collaboration_id)
        party_id = check_id(body.get("party_id"), "party_id")
        if party_id != claims.party_id:
            raise PtxError(
                "the token is for another party", 403, [Problem("party_id", "not the token's")]
            )
        raw = body.get("shares")
        if not isinstance(raw, dict):
            raise PtxError("shares missing", 422, [Problem("shares", "a share vector object")])
        vector = ShareVector.from_json(raw)
        problems = []
        if vector.party != self.index:
            problems.append(Problem("shares.party", f"this is node {self.index}"))
        if (vector.m, vector.t) != (self.config.m, self.config.t):
            problems.append(
                Problem("shares.m", f"this cluster has m={self.config.m}, t={self.config.t}")
            )
        if not vector.program:
            problems.append(Problem("shares.program", "the program hash is required"))
        if problems:
            raise PtxError("the shares are not for this node", 422, problems)
        info = ShareInfo(secret_id, collaboration_id, party_id, vector.program, len(vector.values))
        created = await self.store.put_share(info, vector.to_json())
        if created:
            log.info("node.shares_stored", node=self.index, collaboration_id=collaboration_id)
        return info, created

    async def share_info(self, token: str | None, secret_id: str) -> ShareInfo:
        """Facts of a stored share vector (coordinator only; never the values)."""
        self.tokens.verify(token, Scope.COORDINATOR)
        info = await self.store.share_info(check_id(secret_id, "path.secret_id"))
        if info is None:
            raise NotFoundError(f"no shares {secret_id} at node {self.index}", "path.secret_id")
        return info

    # -- runs ------------------------------------------------------------------------------

    async def start_run(self, token: str | None, body: Any) -> RunRecord:
        """Start this node's party of a run (idempotent per run id)."""
        if not isinstance(body, dict):
            raise PtxError("body must be an object", 400, [Problem("body", "not an object")])
        collaboration_id = check_id(body.get("collaboration_id"), "collaboration_id")
        self.tokens.verify(token, Scope.COORDINATOR, collaboration_id)
        run_id = check_id(body.get("run_id"), "run_id")
        existing = await self.store.run(run_id)
        if existing is not None:
            return existing
        self._refuse_if_busy()
        ref = ProgramRef.from_json(body.get("program") or {})
        catalogue.resolve(ref)  # 404 unknown program, 409 hash mismatch
        secret_ids = body.get("secret_ids")
        if not isinstance(secret_ids, list) or not secret_ids:
            raise PtxError("no inputs", 422, [Problem("secret_ids", "a non-empty list")])
        ids = [check_id(s, f"secret_ids.{k}") for k, s in enumerate(secret_ids)]
        timeout = float(body.get("timeout") or self.config.run_timeout)
        stored = await self.store.load_shares(ids)
        problems = []
        for k, secret_id in enumerate(ids):
            found = stored.get(secret_id)
            if found is None:
                problems.append(Problem(f"secret_ids.{k}", f"not stored at node {self.index}"))
            elif found[0].collaboration_id != collaboration_id:
                problems.append(Problem(f"secret_ids.{k}", "belongs to another collaboration"))
            elif found[0].program != ref.hash:
                problems.append(Problem(f"secret_ids.{k}", "shared for another program"))
        if problems:
            raise PtxError(f"node {self.index} cannot run these inputs", 422, problems)
        request = {
            "collaboration_id": collaboration_id,
            "program": ref.to_json(),
            "secret_ids": ids,
            "timeout": timeout,
        }
        if self._active is not None or not await self.store.create_run(
            run_id, collaboration_id, request
        ):
            record = await self.store.run(run_id)
            if record is None:
                self._refuse_if_busy()
            assert record is not None
            return record
        self._active = run_id
        vectors = [stored[s][1] for s in ids]
        task = asyncio.create_task(self._execute(run_id, ref, ids, vectors, timeout))
        self._tasks[run_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(run_id, None))
        log.info("node.run_started", node=self.index, run_id=run_id)
        record = await self.store.run(run_id)
        assert record is not None
        return record

    def _refuse_if_busy(self) -> None:
        """409 naming the run in progress (problem ``active_run``) when there is one."""
        if self._active is not None:
            message = f"node {self.index} is busy with run {self._active}"
            raise PtxError(message, 409, [Problem("active_run", self._active)])

    def _write_job(
        self, run_id: str, ref: ProgramRef, vectors: list[str], timeout: float
    ) -> tuple[Path, Path]:
        workdir = self.config.data_dir / "runs" / run_id
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        paths = []
        for j, text in enumerate(vectors):
            path = workdir / f"input-{j}.json"
            path.write_text(text)
            paths.append(path)
        output = workdir / "result.json"
        job = PartyJob(
            run_id=run_id,
            index=self.index,
            parties=list(self.config.parties),
            computations=[Computation(ref, paths)],
            output=output,
            timeout=timeout,
            threshold=self.config.t,
            ssl=self.config.ssl_dir is not None,
            ssl_dir=self.config.ssl_dir,
        )
        job.dump(workdir / "job.json")
        return workdir, output

    async def _execute(
        self, run_id: str, ref: ProgramRef, ids: list[str], vectors: list[str], timeout: float
    ) -> None:
        workdir = self.config.data_dir / "runs" / run_id
        try:
            workdir, output = await asyncio.to_thread(
                self._write_job, run_id, ref, vectors, timeout
            )
            process = await asyncio.create_subprocess_exec(
                self.config.python,
                "-m",
                "ptx_chain_node.mpc.party",
                "--job",
                str(workdir / "job.json"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            self._processes[run_id] = process
            assert process.stderr is not None
            try:
                stderr = await asyncio.wait_for(process.stderr.read(), timeout + 10.0)
                returncode = await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                await self._fail(run_id, f"node {self.index}: no result within {timeout:g} s")
                return
            if run_id in self._cancelled:
                await self._fail(run_id, f"node {self.index}: run cancelled by the coordinator")
            elif returncode == 0:
                result = await asyncio.to_thread(output.read_text)
                await self.store.finish_run(run_id, RunState.DONE, result=result)
                if not self.config.retain_shares:
                    await self.store.delete_shares(ids)
                log.info("node.run_done", node=self.index, run_id=run_id)
            else:
                reason = _reason(stderr.decode(errors="replace"), self.index)
                await self._fail(run_id, f"node {self.index} (exit {returncode}): {reason}")
        except asyncio.CancelledError:
            await asyncio.shield(self._fail(run_id, f"node {self.index} stopped during the run"))
            raise
        except Exception as exc:  # noqa: BLE001 - a run fails cleanly, whatever happened
            await self._fail(run_id, f"node {self.index}: {type(exc).__name__}: {exc}")
        finally:
            self._processes.pop(run_id, None)
            self._cancelled.discard(run_id)
            if self._active == run_id:
                self._active = None
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def _fail(self, run_id: str, reason: str) -> None:
        await self.store.finish_run(run_id, RunState.FAILED, error=reason)
        log.warning("node.run_failed", node=self.index, run_id=run_id, reason=reason)

    async def run_status(self, token: str | None, run_id: str) -> RunRecord:
        """A run's state at this node (coordinator only)."""
        self.tokens.verify(token, Scope.COORDINATOR)
        record = await self.store.run(check_id(run_id, "path.run_id"))
        if record is None:
            raise NotFoundError(f"node {self.index} knows no run {run_id}", "path.run_id")
        return record

    async def cancel_run(self, token: str | None, run_id: str) -> RunRecord:
        """Stop this node's party of a run (coordinator only); the run fails."""
        record = await self.run_status(token, run_id)
        process = self._processes.get(run_id)
        if process is not None and process.returncode is None:
            self._cancelled.add(run_id)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        elif record.state is RunState.RUNNING and run_id not in self._tasks:
            await self._fail(run_id, f"node {self.index}: run cancelled by the coordinator")
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.wait({task}, timeout=10.0)
        return await self.run_status(token, run_id)

    async def result(self, token: str | None, result_id: str) -> dict[str, Any]:
        """This node's result shares of a run, for an output party of its collaboration."""
        claims = self.tokens.verify(token, Scope.RESULT)
        found = await self.store.result(check_id(result_id, "path.result_id"))
        if found is None or found[0].collaboration_id != claims.collaboration_id:
            raise NotFoundError(f"no result {result_id} at node {self.index}", "path.result_id")
        doc: dict[str, Any] = json.loads(found[1])
        return doc

    async def delete_collaboration(self, token: str | None, collaboration_id: str) -> int:
        """Forget a collaboration's shares, runs and results (coordinator only)."""
        check_id(collaboration_id, "path.collaboration_id")
        self.tokens.verify(token, Scope.COORDINATOR, collaboration_id)
        removed = await self.store.delete_collaboration(collaboration_id)
        log.info("node.collaboration_deleted", node=self.index, collaboration_id=collaboration_id)
        return removed
