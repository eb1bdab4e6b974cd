"""The collaboration store: definitions, states, parties, runs, in SQLite or PostgreSQL.

Every method is one short transaction (see :mod:`~ptx_chain_node.coordination.transactions`
for how concurrent writers are kept apart). The collaboration rows are here; their parties
are in :class:`~ptx_chain_node.coordination.party_store.PartyStore`, their runs in
:class:`~ptx_chain_node.coordination.run_store.RunStore`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, select

from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.party_store import PartyStore
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.rows import collaboration_record, party_values
from ptx_chain_node.coordination.run_store import RunStore
from ptx_chain_node.coordination.schema import collaboration_parties as parties_t
from ptx_chain_node.coordination.schema import collaborations as collabs_t
from ptx_chain_node.coordination.states import ACCEPTING, CollabState, Facts
from ptx_chain_node.coordination.transactions import in_states, read_rows, write, writing
from ptx_chain_node.store.database import Database


class CollaborationStore(PartyStore, RunStore):
    """Collaborations, their parties and runs through SQLAlchemy Core (one code path)."""

    def __init__(self, database: Database) -> None:
        self.database = database

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
                await conn.execute(insert(parties_t), [party_values(p) for p in outputs])

    async def get(self, collaboration_id: str) -> CollaborationRecord | None:
        """One collaboration, or None."""
        async with self.database.engine.connect() as conn:
            query = select(collabs_t).where(collabs_t.c.id == collaboration_id)
            row = (await conn.execute(query)).mappings().first()
        return collaboration_record(row) if row else None

    async def collaborations(
        self, *, state: CollabState | None = None, limit: int = 100, offset: int = 0
    ) -> list[CollaborationRecord]:
        """Collaborations, newest first."""
        query = select(collabs_t).order_by(collabs_t.c.created_at.desc(), collabs_t.c.id)
        if state is not None:
            query = query.where(collabs_t.c.state == state.value)
        rows = await read_rows(self.database, query.limit(limit).offset(offset))
        return [collaboration_record(row) for row in rows]

    async def delete(self, collaboration_id: str) -> bool:
        """Delete a collaboration that is not running (parties and notifications go too)."""
        statement = delete(collabs_t).where(
            collabs_t.c.id == collaboration_id, collabs_t.c.state != CollabState.RUNNING.value
        )
        return bool(await write(self.database, statement))

    async def transition(
        self,
        collaboration_id: str,
        source: Sequence[CollabState],
        target: CollabState,
        **values: Any,
    ) -> bool:
        """Compare-and-set the state: only when it is one of ``source``."""
        statement = in_states(collaboration_id, source).values(
            state=target.value, updated_at=time.time(), **values
        )
        return bool(await write(self.database, statement))

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
