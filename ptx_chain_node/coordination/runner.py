"""Runs: start the engine, watch it under a lease, record the end and queue notifications.

A run belongs to the process holding its lease (``lease_owner`` on the collaboration). The
holder renews it while it polls the engine; when a process dies its leases expire and the
sweep of another process (or of the restarted one) adopts the run: if the engine still knows
the run it is watched again, otherwise it is started again under a new run id, up to
``max_attempts`` times, and then failed cleanly.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from ptx_chain_node.coordination.engine import Engine, PartyInput, RunPhase
from ptx_chain_node.coordination.outbox import NewNotification
from ptx_chain_node.coordination.records import CollaborationRecord, Role
from ptx_chain_node.coordination.states import CollabState
from ptx_chain_node.coordination.store import CollaborationStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunPolicy:
    """Leases, polling, limits of runs and the deadline of the notifications they cause."""

    lease_seconds: float = 30.0
    poll_interval: float = 0.5
    timeout: float = 3600.0
    max_attempts: int = 2
    notify_deadline: float = 3600.0


def notification_body(
    collaboration_id: str, state: CollabState, result_ids: list[str] | None, error: str | None
) -> str:
    """Upstream's notify body (``message, code, collaborationId, secretId``) plus ours."""
    ok = state is CollabState.DONE
    ids = result_ids or []
    body = {
        "message": "Success" if ok else (error or state.value),
        "code": 200 if ok else 500,
        "collaborationId": collaboration_id,
        "secretId": ids[0] if ids else None,
        "secretIds": ids,
        "state": state.value,
    }
    return json.dumps(body, separators=(",", ":"))


class RunSupervisor:
    """Starts, watches and ends the runs this process holds."""

    def __init__(
        self,
        store: CollaborationStore,
        engines: Mapping[str, Engine],
        policy: RunPolicy,
        *,
        on_end: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        self.engines = engines
        self.policy = policy
        self.on_end = on_end
        self.owner = f"run-{uuid.uuid4().hex[:12]}"
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def launch(self, collaboration_id: str, run_id: str, *, fresh: bool) -> None:
        """Supervise a run this process holds (``fresh``: just started, call the engine)."""
        if collaboration_id in self._tasks:
            return
        task = asyncio.create_task(self._supervise(collaboration_id, run_id, fresh=fresh))
        self._tasks[collaboration_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(collaboration_id, None))

    async def adopt(self) -> int:
        """Lease running collaborations nobody holds and supervise them."""
        claimed = await self.store.claim_runs(self.owner, self.policy.lease_seconds)
        for record in claimed:
            if record.run_id is not None:
                self.launch(record.id, record.run_id, fresh=False)
        return len(claimed)

    async def idle(self) -> None:
        """Wait until the runs supervised so far have ended (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        """Stop watching (runs go on in the engine) and release the leases for adoption."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.store.release_runs(self.owner)

    async def _inputs(self, record: CollaborationRecord) -> list[PartyInput]:
        program = record.definition.program.sha256
        return [
            PartyInput(p.party_id, p.secret_ids or [], p.rows)
            for p in await self.store.parties(record.id, Role.INPUT)
            if p.confirmed_at is not None and p.approved_sha256 == program
        ]

    async def _start(self, engine: Engine, record: CollaborationRecord, run_id: str) -> bool:
        """Hand the run to the engine; refuse (fail the run) below the minimum of parties.

        The state machine never starts a run below the minimum; this guards the hand-over
        itself (e.g. a party withdrew between the start and a restarted run).
        """
        inputs = await self._inputs(record)
        needed = record.definition.min_parties
        if len(inputs) < needed:
            error = f"only {len(inputs)} approved inputs; the collaboration needs {needed}"
            await self._end(record, run_id, CollabState.FAILED, error=error)
            return False
        await engine.run(run_id, record.definition, inputs)
        return True

    async def _end(
        self,
        record: CollaborationRecord,
        run_id: str,
        state: CollabState,
        *,
        result_ids: list[str] | None = None,
        error: str | None = None,
    ) -> None:
        notify = NewNotification(
            notification_body(record.id, state, result_ids, error),
            time.time() + self.policy.notify_deadline,
        )
        ended = await self.store.finish(
            record.id,
            [CollabState.RUNNING],
            state,
            run_id=run_id,
            result_ids=result_ids,
            error=error,
            notify=notify,
        )
        if ended:
            log.info("run ended", collaboration_id=record.id, state=state.value)
            if self.on_end is not None:
                await self.on_end()

    async def _supervise(self, collaboration_id: str, run_id: str, *, fresh: bool) -> None:
        bound = log.bind(collaboration_id=collaboration_id, run_id=run_id)
        record = await self.store.get(collaboration_id)
        if record is None or record.state is not CollabState.RUNNING or record.run_id != run_id:
            return
        engine = self.engines.get(record.definition.engine)
        if engine is None:
            await self._end(record, run_id, CollabState.FAILED, error="engine not available")
            return
        started = record.run_started_at or time.time()
        try:
            if fresh:
                if not await self._start(engine, record, run_id):
                    return
            elif await engine.status(run_id) is None:
                # The engine forgot the run (it restarted): start again or give up.
                if record.run_attempts >= self.policy.max_attempts:
                    bound.warning("run lost; attempts exhausted")
                    await self._end(record, run_id, CollabState.FAILED, error="run lost")
                    return
                new_run_id = str(uuid.uuid4())
                if not await self.store.restart_run(record.id, run_id, new_run_id, self.owner):
                    return
                bound.info("run lost; starting again", new_run_id=new_run_id)
                run_id, started = new_run_id, time.time()
                if not await self._start(engine, record, run_id):
                    return
            await self._watch(record, run_id, engine, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any engine failure fails the run cleanly
            bound.warning("run failed", error=type(exc).__name__)
            await self._end(
                record, run_id, CollabState.FAILED, error=f"engine error: {type(exc).__name__}"
            )

    async def _watch(
        self, record: CollaborationRecord, run_id: str, engine: Engine, started: float
    ) -> None:
        while True:
            status = await engine.status(run_id)
            if status is None:
                await self._end(record, run_id, CollabState.FAILED, error="run lost")
                return
            if status.phase is RunPhase.DONE:
                ids = await engine.fetch_result(run_id)
                await self._end(record, run_id, CollabState.DONE, result_ids=ids)
                return
            if status.phase is RunPhase.FAILED:
                await self._end(record, run_id, CollabState.FAILED, error=status.error or "failed")
                return
            if time.time() - started > self.policy.timeout:
                await self._end(record, run_id, CollabState.FAILED, error="run timed out")
                return
            if not await self.store.renew_run(record.id, self.owner, self.policy.lease_seconds):
                return  # another process took the run over
            await asyncio.sleep(self.policy.poll_interval)
