"""The parties of collaborations in the store: registration, approval, upload confirmation.

Part of :class:`~ptx_chain_node.coordination.store.CollaborationStore`. Changes a party makes
take the collaboration's lock first (:func:`~ptx_chain_node.coordination.transactions.lock_if`),
so they cannot race a state change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ptx_chain_node.coordination.records import PartyRecord, Role
from ptx_chain_node.coordination.rows import party_record, party_values
from ptx_chain_node.coordination.schema import collaboration_parties as parties_t
from ptx_chain_node.coordination.states import ACCEPTING, CollabState
from ptx_chain_node.coordination.transactions import lock_if, read_rows, writing
from ptx_chain_node.store.database import Database


class AddOutcome(StrEnum):
    """What :meth:`PartyStore.add_party` did."""

    ADDED = "added"
    EXISTS = "exists"
    CLOSED = "closed"  # the collaboration is not in the required states
    FULL = "full"  # as many input parties as the collaboration takes


def party_key(collaboration_id: str, role: Role, party_id: str) -> Any:
    """The condition selecting one party's row."""
    return and_(
        parties_t.c.collaboration_id == collaboration_id,
        parties_t.c.role == role.value,
        parties_t.c.party_id == party_id,
    )


class PartyStore:
    """Input and output parties of collaborations (part of the collaboration store)."""

    database: Database

    async def parties(self, collaboration_id: str, role: Role | None = None) -> list[PartyRecord]:
        """The parties of a collaboration, by registration time."""
        query = select(parties_t).where(parties_t.c.collaboration_id == collaboration_id)
        if role is not None:
            query = query.where(parties_t.c.role == role.value)
        query = query.order_by(parties_t.c.registered_at, parties_t.c.party_id)
        return [party_record(row) for row in await read_rows(self.database, query)]

    async def party(self, collaboration_id: str, role: Role, party_id: str) -> PartyRecord | None:
        """One party, or None."""
        query = select(parties_t).where(party_key(collaboration_id, role, party_id))
        async with self.database.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return party_record(row) if row else None

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
        insert = sqlite.insert if self.database.is_sqlite else postgresql.insert
        statement = (
            insert(parties_t)
            .values(**party_values(record))
            .on_conflict_do_nothing(index_elements=["collaboration_id", "role", "party_id"])
        )
        async with writing(self.database), self.database.engine.begin() as conn:
            if not await lock_if(conn, record.collaboration_id, states):
                return AddOutcome.CLOSED
            existing = select(func.count()).where(
                parties_t.c.collaboration_id == record.collaboration_id,
                parties_t.c.role == record.role.value,
            )
            if (
                capacity is not None
                and (await conn.execute(existing)).scalar_one() >= capacity
                and not await _exists(conn, record)
            ):
                return AddOutcome.FULL
            result = await conn.execute(statement)
        return AddOutcome.ADDED if result.rowcount else AddOutcome.EXISTS

    async def remove_party(self, collaboration_id: str, role: Role, party_id: str) -> bool | None:
        """Unregister a party while the collaboration accepts changes (None when it does not)."""
        statement = delete(parties_t).where(party_key(collaboration_id, role, party_id))
        return await self._while_accepting(collaboration_id, statement)

    async def approve(self, collaboration_id: str, party_id: str, sha256: str) -> bool | None:
        """Record an input party's approval of a program hash (None: not accepting)."""
        statement = (
            update(parties_t)
            .where(party_key(collaboration_id, Role.INPUT, party_id))
            .values(approved_sha256=sha256)
        )
        return await self._while_accepting(collaboration_id, statement)

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
        statement = (
            update(parties_t)
            .where(
                party_key(collaboration_id, Role.INPUT, party_id),
                parties_t.c.confirmed_at.is_(None),
            )
            .values(**values)
        )
        return await self._while_accepting(collaboration_id, statement)

    async def _while_accepting(self, collaboration_id: str, statement: Any) -> bool | None:
        """Run a party change under the collaboration's lock while it accepts changes.

        True when it changed a row, False when it did not, None when not accepting.
        """
        async with writing(self.database), self.database.engine.begin() as conn:
            if not await lock_if(conn, collaboration_id, ACCEPTING):
                return None
            result = await conn.execute(statement)
        return bool(result.rowcount)


async def _exists(conn: AsyncConnection, record: PartyRecord) -> bool:
    key = party_key(record.collaboration_id, record.role, record.party_id)
    return (await conn.execute(select(parties_t.c.party_id).where(key))).first() is not None
