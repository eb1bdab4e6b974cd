"""The MPyC engine of the coordinator: m compute nodes behind :class:`NodeClient`.

- ``input_plan``: nodes, ``m``, ``t``, the secure type and field, the catalogue program
  reference (with its hash) and column mapping, and how uploads are authorised (the party
  asks the coordinator for a node token, see :mod:`.node_tokens`);
- ``register_inputs``: every node must hold the confirmed secret ids, for this
  collaboration, this party and this program;
- ``run``: one run id posted to all m nodes concurrently; runs go one at a time (a node has
  one MPyC port). A node that is down, refuses, fails or stops answering fails the run with
  a reason naming it, and the other nodes are told to cancel; inputs stay at the nodes, so
  the run can be started again under a new run id;
- ``status`` / ``fetch_result``: the run as this engine watched it; the result id is the
  run id, under which each node keeps its result share for the output parties. A run an
  earlier process started (a coordinator restart) is adopted when every node still has it
  running or done (a done run's inputs are gone: it could not run again);
- ``delete``: the collaboration is forgotten at every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import structlog

from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.engine import PartyInput, RunPhase, RunStatus
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.deployment import MpycSettings, NodeSpec
from ptx_chain_node.mpc.node_client import NodeClient, NodeUnavailable
from ptx_chain_node.mpc.node_tokens import NodeTokens, Scope
from ptx_chain_node.mpc.registry import Binding, binding
from ptx_chain_node.mpc.sharing import check_parties

log = structlog.get_logger(__name__)

T = TypeVar("T")
TOKEN_SCHEME = "ptxn1 (HMAC-SHA256, issued by the coordinator)"  # noqa: S105


@dataclass
class _Run:
    collaboration_id: str
    status: RunStatus = field(default_factory=lambda: RunStatus(RunPhase.RUNNING))
    task: asyncio.Task[None] | None = None


class MpycEngine:
    """The coordinator's engine over m MPyC compute nodes (``name = "mpyc"``)."""

    name = "mpyc"

    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        http: httpx.AsyncClient,
        token_secret: str,
        *,
        threshold: int | None = None,
        run_timeout: float = 120.0,
        poll_interval: float = 0.2,
        unreachable_grace: float = 3.0,
        upload_token_ttl: float = 86400.0,
    ) -> None:
        self.nodes = list(nodes)
        self.clients = [NodeClient(http, n.url, i) for i, n in enumerate(self.nodes)]
        self.tokens = NodeTokens(token_secret)
        self.threshold = threshold
        self.run_timeout = run_timeout
        self.poll_interval = poll_interval
        self.unreachable_grace = unreachable_grace
        self.upload_token_ttl = upload_token_ttl
        self._runs: dict[str, _Run] = {}
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: MpycSettings, http: httpx.AsyncClient) -> MpycEngine:
        """The engine of the ``[mpyc]`` settings (nodes and token secret must be set)."""
        if settings.token_secret is None:
            raise ValueError("mpyc.token_secret is required with remote nodes")
        return cls(
            settings.nodes,
            http,
            settings.token_secret.get_secret_value(),
            threshold=settings.threshold,
            run_timeout=settings.run_timeout,
            upload_token_ttl=settings.upload_token_ttl,
        )

    @property
    def m(self) -> int:
        return len(self.nodes)

    def _coordinator_token(self, collaboration_id: str = "*") -> str:
        return self.tokens.issue(Scope.COORDINATOR, collaboration_id, ttl=300.0)

    async def _each(self, calls: Sequence[Awaitable[T]]) -> list[T | BaseException]:
        return list(await asyncio.gather(*calls, return_exceptions=True))

    # -- configuration and plans -----------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        problems = [Problem(f"compute_config.{k}", "unknown key") for k in config if k != "t"]
        if problems:
            raise PtxError("invalid compute config", 422, problems)
        t = config.get("t", self.threshold)
        try:
            t = check_parties(self.m, t)
        except PtxError as exc:
            raise PtxError(exc.message, 422, [Problem("compute_config.t", exc.message)]) from None
        if t != check_parties(self.m, self.threshold):
            message = f"the nodes run with t = {check_parties(self.m, self.threshold)}"
            raise PtxError(message, 422, [Problem("compute_config.t", message)])
        return {"m": self.m, "t": t}

    def binding(self, collaboration: Collaboration) -> Binding:
        """The catalogue program of a collaboration (422 when it is not a catalogue one)."""
        program = collaboration.program
        return binding(program.name, program.version, program.parameters)

    async def input_plan(self, collaboration: Collaboration) -> dict[str, Any]:
        found = self.binding(collaboration)
        stype = found.bound.program.stype
        cid = collaboration.id
        return {
            "engine": self.name,
            "m": self.m,
            "t": check_parties(self.m, self.threshold),
            "nodes": [{"index": i, "url": n.url} for i, n in enumerate(self.nodes)],
            "sectype": stype.name,
            "modulus": str(stype.modulus),
            "program": found.bound.ref().to_json(),
            "program_sha256": collaboration.program.sha256,
            "decomposable": found.bound.program.decomposable,
            "columns": found.columns,
            "upload": {
                "token_scheme": TOKEN_SCHEME,
                "token_from": f"/v1/collaborations/{cid}/input-parties/{{party_id}}/node-token",
                "shares_to": "PUT {node url}/v1/shares/{secret_id}",
            },
            "result": {
                "token_from": f"/v1/collaborations/{cid}/output-parties/{{party_id}}/node-token",
                "shares_from": "GET {node url}/v1/results/{result_id}",
                "needed": check_parties(self.m, self.threshold) + 1,
            },
        }

    def grant(self, collaboration_id: str, role: Role, party_id: str) -> dict[str, Any]:
        """A node token for an authenticated party (the coordinator checked its token)."""
        scope = Scope.UPLOAD if role is Role.INPUT else Scope.RESULT
        now = time.time()
        token = self.tokens.issue(scope, collaboration_id, party_id, self.upload_token_ttl, now)
        return {
            "scheme": TOKEN_SCHEME,
            "scope": scope.value,
            "token": token,
            "expires_at": now + self.upload_token_ttl,
            "nodes": [{"index": i, "url": n.url} for i, n in enumerate(self.nodes)],
        }

    async def register_inputs(self, collaboration: Collaboration, upload: PartyInput) -> None:
        expected = self.binding(collaboration).bound.hash
        token = self._coordinator_token()
        problems: list[Problem] = []
        for k, secret_id in enumerate(upload.secret_ids):
            answers = await self._each([c.share_info(token, secret_id) for c in self.clients])
            for client, answer in zip(self.clients, answers, strict=True):
                where = f"secret_ids.{k}"
                if isinstance(answer, NodeUnavailable):
                    problems.append(Problem(where, answer.message))
                elif isinstance(answer, BaseException):
                    problems.append(Problem(where, f"node {client.index}: {answer}"))
                elif answer is None:
                    problems.append(Problem(where, f"not uploaded to node {client.index}"))
                elif answer["collaboration_id"] != collaboration.id:
                    problems.append(Problem(where, "uploaded for another collaboration"))
                elif answer["party_id"] != upload.party_id:
                    problems.append(Problem(where, "uploaded by another party"))
                elif answer["program"] != expected:
                    problems.append(Problem(where, "shared for another program"))
        if problems:
            raise PtxError("upload does not match the shares at the nodes", 422, problems)

    # -- runs ------------------------------------------------------------------------------

    async def run(
        self, run_id: str, collaboration: Collaboration, inputs: Sequence[PartyInput]
    ) -> None:
        if run_id in self._runs:
            return
        found = self.binding(collaboration)
        request = {
            "run_id": run_id,
            "collaboration_id": collaboration.id,
            "program": found.bound.ref().to_json(),
            "secret_ids": [s for party in inputs for s in party.secret_ids],
            "timeout": self.run_timeout,
        }
        run = _Run(collaboration.id)
        self._runs[run_id] = run
        run.task = asyncio.create_task(
            self._drive(run_id, run, lambda: self._execute(run_id, request))
        )

    async def _drive(
        self, run_id: str, run: _Run, work: Callable[[], Awaitable[str | None]]
    ) -> None:
        bound = log.bind(run_id=run_id, collaboration_id=run.collaboration_id)
        try:
            async with self._lock:
                error = await work()
        except asyncio.CancelledError:
            run.status = RunStatus(RunPhase.FAILED, "the engine stopped during the run")
            raise
        except Exception as exc:  # noqa: BLE001 - the run fails with a reason, never hangs
            error = f"engine error: {type(exc).__name__}: {exc}"
        if error is None:
            run.status = RunStatus(RunPhase.DONE)
            bound.info("mpyc.run_done")
        else:
            run.status = RunStatus(RunPhase.FAILED, error)
            bound.warning("mpyc.run_failed", reason=error)

    async def _cancel(self, run_id: str) -> None:
        token = self._coordinator_token()
        await self._each([c.cancel(token, run_id) for c in self.clients])

    async def _execute(self, run_id: str, request: dict[str, Any]) -> str | None:
        """Run on all nodes; None when every node is done, else why the run failed."""
        token = self._coordinator_token(request["collaboration_id"])
        answers = await self._each([c.start_run(token, request) for c in self.clients])
        for i, answer in enumerate(answers):
            orphan = self._orphan(answer)
            if orphan is not None:  # left by an earlier process of this engine: end it
                await self.clients[i].cancel(self._coordinator_token(), orphan)
                (answers[i],) = await self._each([self.clients[i].start_run(token, request)])
        refused = [
            a.message if isinstance(a, PtxError) else f"node {i}: {type(a).__name__}"
            for i, a in enumerate(answers)
            if isinstance(a, BaseException)
        ]
        if refused:
            await self._cancel(run_id)
            return "; ".join(refused)
        return await self._follow(run_id)

    async def _follow(self, run_id: str) -> str | None:
        """Watch a run started at every node; None when all are done, else why it failed."""
        deadline = time.monotonic() + self.run_timeout + 15.0
        silent_since: dict[int, float] = {}
        while True:
            token = self._coordinator_token()
            views = await self._each([c.run(token, run_id) for c in self.clients])
            now = time.monotonic()
            failures, done = [], 0
            for client, view in zip(self.clients, views, strict=True):
                if isinstance(view, BaseException) or view is None:
                    first = silent_since.setdefault(client.index, now)
                    if now - first >= self.unreachable_grace:
                        why = (
                            view.message
                            if isinstance(view, PtxError)
                            else f"node {client.index} ({client.url}) lost the run"
                        )
                        failures.append(why)
                    continue
                silent_since.pop(client.index, None)
                if view["state"] == "failed":
                    failures.append(str(view.get("error") or f"node {client.index} failed"))
                elif view["state"] == "done":
                    done += 1
            if failures:
                await self._cancel(run_id)
                return "; ".join(failures)
            if done == self.m:
                return None
            if now > deadline:
                await self._cancel(run_id)
                return f"no result within {self.run_timeout:g} s"
            await asyncio.sleep(self.poll_interval)

    def _orphan(self, answer: object) -> str | None:
        """The run a node is busy with, when this engine does not know it (else None)."""
        if not isinstance(answer, PtxError) or answer.status != 409:
            return None
        for problem in answer.problems:
            if problem.field == "active_run" and problem.problem not in self._runs:
                return problem.problem
        return None

    async def status(self, run_id: str) -> RunStatus | None:
        run = self._runs.get(run_id) or await self._adopt(run_id)
        return None if run is None else run.status

    async def _adopt(self, run_id: str) -> _Run | None:
        """A run an earlier process of this engine started, as every node still has it.

        After a coordinator restart the run may still be going on, or be done, at the nodes
        (a done run's inputs are deleted there: it could not be started again), so it is
        followed again under its own id. None when a node does not know it or it failed
        there: the inputs are kept, the caller starts it again under a new run id.
        """
        token = self._coordinator_token()
        views = await self._each([c.run(token, run_id) for c in self.clients])
        known = [v for v in views if isinstance(v, dict)]
        if len(known) < self.m or any(v["state"] not in ("running", "done") for v in known):
            return None
        if run_id in self._runs:  # adopted meanwhile
            return self._runs[run_id]
        run = _Run(str(known[0]["collaboration_id"]))
        self._runs[run_id] = run
        if all(v["state"] == "done" for v in known):
            run.status = RunStatus(RunPhase.DONE)
        else:
            run.task = asyncio.create_task(self._drive(run_id, run, lambda: self._follow(run_id)))
        log.info("mpyc.run_adopted", run_id=run_id, state=run.status.phase.value)
        return run

    async def fetch_result(self, run_id: str) -> list[str]:
        run = self._runs.get(run_id)
        if run is None or run.status.phase is not RunPhase.DONE:
            raise PtxError("no result for this run", 409, [Problem("run_id", "not done")])
        return [run_id]

    async def delete(self, collaboration_id: str) -> None:
        for run_id, run in list(self._runs.items()):
            if run.collaboration_id == collaboration_id:
                if run.task is not None and not run.task.done():
                    run.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await run.task
                    await self._cancel(run_id)
                del self._runs[run_id]
        token = self._coordinator_token(collaboration_id)
        answers = await self._each([c.delete(token, collaboration_id) for c in self.clients])
        failed = [a for a in answers if isinstance(a, BaseException)]
        if failed:
            problems = [Problem("nodes", str(a)) for a in failed]
            raise PtxError("some nodes could not delete the collaboration", 502, problems)

    async def close(self) -> None:
        """Stop watching runs (the nodes end them by their own time limit)."""
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
