"""The collaboration store: definitions, states, parties, in SQLite or PostgreSQL.

Every method is one short transaction. Writes that depend on the collaboration's state
first touch the collaboration row with a guarded ``UPDATE ... WHERE state IN (...)``: that
takes the row lock on PostgreSQL and the write lock on SQLite, so a concurrent state change
cannot slip between the check and the write. The start of a run is a conditional
``UPDATE ... WHERE state = 'ready'``: of any number of concurrent callers exactly one wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.schema import (
    collaboration_parties as parties_t,
)
from ptx_chain_node.coordination.schema import (
    collaborations as collabs_t,
)
from ptx_chain_node.coordination.schema import (
    notifications as notifications_t,
)
from ptx_chain_node.coordination.states import ACCEPTING, CollabState, Facts
from ptx_chain_node.store.database import Database


@dataclass(frozen=True)
class NewNotification:
    """The notification every output party gets with a terminal state change."""

    body: str
    deadline: float


class AddOutcome(StrEnum):
    """What :meth:`CollaborationStore.add_party` did."""

    ADDED = "added"
    EXISTS = "exists"
    CLOSED = "closed"  # the collaboration is not in the required states
    FULL = "full"  # as many input parties as the collaboration takes


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Database, asyncio.Lock] = weakref.WeakKeyDictionary()


def writing(database: Database) -> contextlib.AbstractAsyncContextManager[Any]:
    """Serialise this process's write transactions on SQLite (one writer per file anyway).

    Waiting on an asyncio lock is far cheaper than SQLite's busy handler, which sleeps
    for up to tens of milliseconds per retry. PostgreSQL needs no such lock.
    """
    if not database.is_sqlite:
        return contextlib.nullcontext()
    lock = _SQLITE_WRITERS.get(database)
    if lock is None:
        lock = _SQLITE_WRITERS[database] = asyncio.Lock()
    return lock


def _loads(value: str | None) -> Any:
    return json.loads(value) if value is not None else None


def _record(row: RowMapping) -> CollaborationRecord:
    return CollaborationRecord(
        definition=Collaboration.model_validate_json(row["definition"]),
        state=CollabState(row["state"]),
        updated_at=row["updated_at"],
        run_id=row["run_id"],
        run_attempts=row["run_attempts"],
        run_started_at=row["run_started_at"],
        result_ids=_loads(row["result_ids"]),
        error=row["error"],
        finished_at=row["finished_at"],
        lease_owner=row["lease_owner"],
    )


def _party(row: RowMapping) -> PartyRecord:
    return PartyRecord(
        collaboration_id=row["collaboration_id"],
        role=Role(row["role"]),
        party_id=row["party_id"],
        token_sha256=row["token_sha256"],
        registered_at=row["registered_at"],
        identity=row["identity"],
        endpoint=row["endpoint"],
        notify_secret=row["notify_secret"],
        approved_sha256=row["approved_sha256"],
        secret_ids=_loads(row["secret_ids"]),
        rows=row["rows"],
        confirmed_at=row["confirmed_at"],
    )


def _party_values(record: PartyRecord) -> dict[str, Any]:
    return {
        "collaboration_id": record.collaboration_id,
        "role": record.role.value,
        "party_id": record.party_id,
        "token_sha256": record.token_sha256,
        "registered_at": record.registered_at,
        "identity": record.identity,
        "endpoint": record.endpoint,
        "notify_secret": record.notify_secret,
        "approved_sha256": record.approved_sha256,
        "secret_ids": json.dumps(record.secret_ids) if record.secret_ids is not None else None,
        "rows": record.rows,
        "confirmed_at": record.confirmed_at,
    }


def _party_key(collaboration_id: str, role: Role, party_id: str) -> Any:
    return and_(
        parties_t.c.collaboration_id == collaboration_id,
        parties_t.c.role == role.value,
        parties_t.c.party_id == party_id,
    )


class CollaborationStore:
    """Collaborations and their parties through SQLAlchemy Core (one code path)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._insert = sqlite.insert if database.is_sqlite else postgresql.insert

    # -- collaborations -------------------------------------------------------------------

    async def create(self, definition: Collaboration, outputs: Sequence[PartyRecord]) -> None:
        """Insert a new collaboration (state ``open``) with its initial output parties."""
        now = time.time()
        async with writing(self.database), self.database.engine.begin() as conn:
            await conn.execute(
                insert(collabs_t).values(
                    id=definition.id,
                    name=definition.name,
                    definition=definition.model_dump_json(),
                    program_sha256=definition.program.sha256,
                    engine=definition.engine,
                    state=CollabState.OPEN.value,
                    deadline=definition.deadline,
                    created_at=definition.created_at,
                    updated_at=now,
                    run_attempts=0,
                )
            )
            if outputs:
                await conn.execute(insert(parties_t), [_party_values(p) for p in outputs])

    async def get(self, collaboration_id: str) -> CollaborationRecord | None:
        """One collaboration, or None."""
        async with self.database.engine.connect() as conn:
            query = select(collabs_t).where(collabs_t.c.id == collaboration_id)
            row = (await conn.execute(query)).mappings().first()
        return _record(row) if row else None

    async def collaborations(
        self, *, state: CollabState | None = None, limit: int = 100, offset: int = 0
    ) -> list[CollaborationRecord]:
        """Collaborations, newest first."""
        query = select(collabs_t).order_by(collabs_t.c.created_at.desc(), collabs_t.c.id)
        if state is not None:
            query = query.where(collabs_t.c.state == state.value)
        async with self.database.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
        return [_record(row) for row in rows]

    async def delete(self, collaboration_id: str) -> bool:
        """Delete a collaboration that is not running (parties and notifications go too)."""
        statement = delete(collabs_t).where(
            collabs_t.c.id == collaboration_id, collabs_t.c.state != CollabState.RUNNING.value
        )
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def _lock_if(
        self, conn: AsyncConnection, collaboration_id: str, states: Sequence[CollabState]
    ) -> bool:
        """Touch the collaboration row when it is in ``states`` (locks it; see module doc)."""
        result = await conn.execute(
            update(collabs_t)
            .where(
                collabs_t.c.id == collaboration_id,
                collabs_t.c.state.in_([s.value for s in states]),
            )
            .values(updated_at=time.time())
        )
        return bool(result.rowcount)

    async def transition(
        self,
        collaboration_id: str,
        source: Sequence[CollabState],
        target: CollabState,
        **values: Any,
    ) -> bool:
        """Compare-and-set the state: only when it is one of ``source``."""
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(collabs_t)
                .where(
                    collabs_t.c.id == collaboration_id,
                    collabs_t.c.state.in_([s.value for s in source]),
                )
                .values(state=target.value, updated_at=time.time(), **values)
            )
        return bool(result.rowcount)

    async def start_run(
        self, collaboration_id: str, run_id: str, owner: str, lease_seconds: float
    ) -> bool:
        """``ready -> running`` with a new run id, leased to ``owner``; True for the winner."""
        now = time.time()
        return await self.transition(
            collaboration_id,
            [CollabState.READY],
            CollabState.RUNNING,
            run_id=run_id,
            run_attempts=collabs_t.c.run_attempts + 1,
            run_started_at=now,
            lease_owner=owner,
            lease_until=now + lease_seconds,
        )

    async def restart_run(
        self, collaboration_id: str, old_run_id: str, new_run_id: str, owner: str
    ) -> bool:
        """Give a running collaboration whose run was lost a new run id (one more attempt)."""
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(collabs_t)
                .where(
                    collabs_t.c.id == collaboration_id,
                    collabs_t.c.state == CollabState.RUNNING.value,
                    collabs_t.c.run_id == old_run_id,
                    collabs_t.c.lease_owner == owner,
                )
                .values(
                    run_id=new_run_id,
                    run_attempts=collabs_t.c.run_attempts + 1,
                    run_started_at=time.time(),
                    updated_at=time.time(),
                )
            )
        return bool(result.rowcount)

    async def claim_runs(
        self, owner: str, lease_seconds: float, *, limit: int = 10
    ) -> list[CollaborationRecord]:
        """Lease running collaborations nobody holds (a crashed or stopped replica's)."""
        now = time.time()
        orphaned = and_(
            collabs_t.c.state == CollabState.RUNNING.value,
            or_(collabs_t.c.lease_until.is_(None), collabs_t.c.lease_until < now),
        )
        candidates = (
            select(collabs_t.c.id).where(orphaned).limit(limit).with_for_update(skip_locked=True)
        )
        statement = (
            update(collabs_t)
            .where(collabs_t.c.id.in_(candidates), orphaned)
            .values(lease_owner=owner, lease_until=now + lease_seconds)
            .returning(*collabs_t.c)
        )
        async with writing(self.database), self.database.engine.begin() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_record(row) for row in rows]

    async def renew_run(self, collaboration_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend the run lease; False when ``owner`` lost it (or the run ended)."""
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(collabs_t)
                .where(
                    collabs_t.c.id == collaboration_id,
                    collabs_t.c.state == CollabState.RUNNING.value,
                    collabs_t.c.lease_owner == owner,
                )
                .values(lease_until=time.time() + lease_seconds)
            )
        return bool(result.rowcount)

    async def release_runs(self, owner: str | None = None) -> int:
        """Drop run leases (all, or ``owner``'s) so a sweep can adopt the runs."""
        statement = update(collabs_t).where(collabs_t.c.lease_owner.is_not(None))
        if owner is not None:
            statement = statement.where(collabs_t.c.lease_owner == owner)
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(statement.values(lease_owner=None, lease_until=None))
        return int(result.rowcount)

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
        statement = update(collabs_t).where(
            collabs_t.c.id == collaboration_id,
            collabs_t.c.state.in_([s.value for s in source]),
        )
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
                outputs = select(
                    (literal(collaboration_id + "/") + parties_t.c.party_id).label("id"),
                    parties_t.c.collaboration_id,
                    parties_t.c.party_id,
                    parties_t.c.endpoint,
                    literal(notify.body).label("body"),
                    literal("pending").label("state"),
                    literal(0).label("attempts"),
                    literal(notify.deadline).label("deadline"),
                    literal(now).label("next_attempt_at"),
                    literal(now).label("created_at"),
                ).where(
                    parties_t.c.collaboration_id == collaboration_id,
                    parties_t.c.role == Role.OUTPUT.value,
                    parties_t.c.endpoint.is_not(None),  # in-process parties read the store
                )
                columns = [
                    "id",
                    "collaboration_id",
                    "party_id",
                    "endpoint",
                    "body",
                    "state",
                    "attempts",
                    "deadline",
                    "next_attempt_at",
                    "created_at",
                ]
                await conn.execute(insert(notifications_t).from_select(columns, outputs))
        return True

    async def due(self, now: float, *, limit: int = 100) -> list[str]:
        """Ids of open or ready collaborations whose deadline has passed."""
        query = (
            select(collabs_t.c.id)
            .where(
                collabs_t.c.state.in_([s.value for s in ACCEPTING]),
                collabs_t.c.deadline.is_not(None),
                collabs_t.c.deadline <= now,
            )
            .order_by(collabs_t.c.deadline)
            .limit(limit)
        )
        async with self.database.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def ready(self, *, limit: int = 100) -> list[str]:
        """Ids of collaborations in ``ready`` (the sweep re-checks their start conditions)."""
        query = select(collabs_t.c.id).where(collabs_t.c.state == CollabState.READY.value)
        async with self.database.engine.connect() as conn:
            return list((await conn.execute(query.limit(limit))).scalars())

    async def counts(self) -> dict[str, int]:
        """Number of collaborations by state."""
        query = select(collabs_t.c.state, func.count()).group_by(collabs_t.c.state)
        async with self.database.engine.connect() as conn:
            return {str(row[0]): int(row[1]) for row in (await conn.execute(query)).all()}

    # -- parties --------------------------------------------------------------------------

    async def parties(self, collaboration_id: str, role: Role | None = None) -> list[PartyRecord]:
        """The parties of a collaboration, by registration time."""
        query = select(parties_t).where(parties_t.c.collaboration_id == collaboration_id)
        if role is not None:
            query = query.where(parties_t.c.role == role.value)
        query = query.order_by(parties_t.c.registered_at, parties_t.c.party_id)
        async with self.database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_party(row) for row in rows]

    async def party(self, collaboration_id: str, role: Role, party_id: str) -> PartyRecord | None:
        """One party, or None."""
        query = select(parties_t).where(_party_key(collaboration_id, role, party_id))
        async with self.database.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _party(row) if row else None

    async def add_party(
        self,
        record: PartyRecord,
        states: Sequence[CollabState],
        *,
        capacity: int | None = None,
    ) -> AddOutcome:
        """Register a party while the collaboration is in ``states``.

        ``capacity`` caps the number of parties of the record's role (checked under the
        collaboration's lock, so concurrent registrations cannot exceed it).
        """
        statement = self._insert(parties_t).values(**_party_values(record))
        statement = statement.on_conflict_do_nothing(
            index_elements=["collaboration_id", "role", "party_id"]
        )
        async with writing(self.database), self.database.engine.begin() as conn:
            if not await self._lock_if(conn, record.collaboration_id, states):
                return AddOutcome.CLOSED
            existing = select(func.count()).where(
                parties_t.c.collaboration_id == record.collaboration_id,
                parties_t.c.role == record.role.value,
            )
            if (
                capacity is not None
                and (await conn.execute(existing)).scalar_one() >= capacity
                and not await self._exists(conn, record)
            ):
                return AddOutcome.FULL
            result = await conn.execute(statement)
        return AddOutcome.ADDED if result.rowcount else AddOutcome.EXISTS

    @staticmethod
    async def _exists(conn: AsyncConnection, record: PartyRecord) -> bool:
        key = _party_key(record.collaboration_id, record.role, record.party_id)
        return (await conn.execute(select(parties_t.c.party_id).where(key))).first() is not None

    async def remove_party(self, collaboration_id: str, role: Role, party_id: str) -> bool | None:
        """Unregister a party while the collaboration accepts changes (None when it does not)."""
        async with writing(self.database), self.database.engine.begin() as conn:
            if not await self._lock_if(conn, collaboration_id, ACCEPTING):
                return None
            result = await conn.execute(
                delete(parties_t).where(_party_key(collaboration_id, role, party_id))
            )
        return bool(result.rowcount)

    async def approve(self, collaboration_id: str, party_id: str, sha256: str) -> bool | None:
        """Record an input party's approval of a program hash (None: not accepting)."""
        async with writing(self.database), self.database.engine.begin() as conn:
            if not await self._lock_if(conn, collaboration_id, ACCEPTING):
                return None
            result = await conn.execute(
                update(parties_t)
                .where(_party_key(collaboration_id, Role.INPUT, party_id))
                .values(approved_sha256=sha256)
            )
        return bool(result.rowcount)

    async def confirm_upload(
        self,
        collaboration_id: str,
        party_id: str,
        secret_ids: list[str],
        rows: int | None,
        *,
        approve: str | None = None,
    ) -> bool | None:
        """Record an input party's first confirmed upload (optionally approving a hash).

        True when recorded, False when the party is unknown or already confirmed, None when
        the collaboration no longer accepts uploads.
        """
        values: dict[str, Any] = {
            "secret_ids": json.dumps(secret_ids),
            "rows": rows,
            "confirmed_at": time.time(),
        }
        if approve is not None:
            values["approved_sha256"] = approve
        async with writing(self.database), self.database.engine.begin() as conn:
            if not await self._lock_if(conn, collaboration_id, ACCEPTING):
                return None
            result = await conn.execute(
                update(parties_t)
                .where(
                    _party_key(collaboration_id, Role.INPUT, party_id),
                    parties_t.c.confirmed_at.is_(None),
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def facts(self, collaboration_id: str) -> tuple[CollaborationRecord, Facts] | None:
        """A collaboration with the party counts its next state depends on."""
        record = await self.get(collaboration_id)
        if record is None:
            return None
        program = record.definition.program.sha256
        confirmed = parties_t.c.confirmed_at.is_not(None)
        query = select(
            func.count().filter(and_(parties_t.c.role == Role.INPUT.value, confirmed)),
            func.count().filter(
                and_(
                    parties_t.c.role == Role.INPUT.value,
                    confirmed,
                    parties_t.c.approved_sha256 == program,
                )
            ),
            func.count().filter(parties_t.c.role == Role.OUTPUT.value),
        ).where(parties_t.c.collaboration_id == collaboration_id)
        async with self.database.engine.connect() as conn:
            n_confirmed, n_approved, n_outputs = (await conn.execute(query)).one()
        definition = record.definition
        return record, Facts(
            expected=definition.number_of_parties,
            min_parties=definition.min_parties,
            allow_partial_run=definition.allow_partial_run,
            confirmed=n_confirmed,
            approved=n_approved,
            outputs=n_outputs,
            deadline=definition.deadline,
        )
