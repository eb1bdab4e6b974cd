"""Runs in the store: their start, leases and end.

Part of :class:`~ptx_chain_node.coordination.store.CollaborationStore`. A run is the
collaboration row's ``run_*`` columns, leased to the replica that supervises it. The start
is a conditional ``UPDATE ... WHERE state = 'ready'``: of any number of concurrent callers
exactly one wins. The end moves the collaboration to a terminal state and queues the output
parties' notifications in one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ptx_chain_node.coordination import leases
from ptx_chain_node.coordination.outbox import NewNotification, queue_notifications
from ptx_chain_node.coordination.records import CollaborationRecord
from ptx_chain_node.coordination.rows import collaboration_record
from ptx_chain_node.coordination.schema import collaborations as collabs_t
from ptx_chain_node.coordination.states import CollabState
from ptx_chain_node.coordination.transactions import (
    in_states,
    write,
    write_returning,
    writing,
)
from ptx_chain_node.store.database import Database


class RunStore:
    """Run starts, leases and ends of collaborations (part of the collaboration store)."""

    database: Database

    async def start_run(
        self, collaboration_id: str, run_id: str, owner: str, lease_seconds: float
    ) -> bool:
        """``ready -> running`` with a new run id, leased to ``owner``; True for the winner."""
        now = time.time()
        statement = in_states(collaboration_id, [CollabState.READY]).values(
            state=CollabState.RUNNING.value,
            updated_at=now,
            run_id=run_id,
            run_attempts=collabs_t.c.run_attempts + 1,
            run_started_at=now,
            lease_owner=owner,
            lease_until=now + lease_seconds,
        )
        return bool(await write(self.database, statement))

    async def restart_run(
        self, collaboration_id: str, old_run_id: str, new_run_id: str, owner: str
    ) -> bool:
        """Give a running collaboration whose run was lost a new run id (one more attempt)."""
        statement = (
            leases.held_by(collabs_t, collaboration_id, owner)
            .where(
                collabs_t.c.state == CollabState.RUNNING.value,
                collabs_t.c.run_id == old_run_id,
            )
            .values(
                run_id=new_run_id,
                run_attempts=collabs_t.c.run_attempts + 1,
                run_started_at=time.time(),
                updated_at=time.time(),
            )
        )
        return bool(await write(self.database, statement))

    async def claim_runs(
        self, owner: str, lease_seconds: float, *, limit: int = 10
    ) -> list[CollaborationRecord]:
        """Lease running collaborations nobody holds (a crashed or stopped replica's)."""
        statement = leases.claim(
            collabs_t,
            collabs_t.c.state == CollabState.RUNNING.value,
            owner=owner,
            now=time.time(),
            lease_seconds=lease_seconds,
            limit=limit,
        )
        rows = await write_returning(self.database, statement)
        return [collaboration_record(row) for row in rows]

    async def renew_run(self, collaboration_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend the run lease; False when ``owner`` lost it (or the run ended)."""
        statement = (
            leases.held_by(collabs_t, collaboration_id, owner)
            .where(collabs_t.c.state == CollabState.RUNNING.value)
            .values(lease_until=time.time() + lease_seconds)
        )
        return bool(await write(self.database, statement))

    async def release_runs(self, owner: str | None = None) -> int:
        """Drop run leases (all, or ``owner``'s) so a sweep can adopt the runs."""
        return await write(self.database, leases.release(collabs_t, owner))

    async def finish(
        self,
        collaboration_id: str,
        source: Sequence[CollabState],
        target: CollabState,
        *,
        run_id: str | None = None,
        result_ids: list[str] | None = None,
        error: str | None = None,
        notify: NewNotification | None = None,
    ) -> bool:
        """Move to a terminal state and queue a notification per output party, atomically.

        Notification ids are ``"<collaboration id>/<party id>"``: one per party and end.
        """
        now = time.time()
        statement = in_states(collaboration_id, source)
        if run_id is not None:
            statement = statement.where(collabs_t.c.run_id == run_id)
        values: dict[str, Any] = {
            "state": target.value,
            "updated_at": now,
            "finished_at": now,
            "lease_owner": None,
            "lease_until": None,
            "error": error,
        }
        if result_ids is not None:
            values["result_ids"] = json.dumps(result_ids)
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(statement.values(**values))
            if not result.rowcount:
                return False
            if notify is not None:
                await queue_notifications(conn, collaboration_id, notify, now)
        return True
