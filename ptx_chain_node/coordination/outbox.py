"""Queued notifications and the record of every delivery attempt, in the store.

A notification is inserted in the same transaction as the state change that causes it
(:func:`queue_notifications`, from :meth:`RunStore.finish`), so a crash cannot lose one. A
sender leases it, records each attempt, and marks it delivered or failed; a lease that
expires (a crashed sender) lets another sender take it over.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import and_, insert, literal, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from ptx_chain_node.coordination import leases
from ptx_chain_node.coordination.party_store import party_key
from ptx_chain_node.coordination.records import (
    Notification,
    NotificationAttempt,
    NotificationState,
    Role,
)
from ptx_chain_node.coordination.rows import from_row
from ptx_chain_node.coordination.schema import collaboration_parties as parties_t
from ptx_chain_node.coordination.schema import notification_attempts as attempts_t
from ptx_chain_node.coordination.schema import notifications as notifications_t
from ptx_chain_node.coordination.transactions import (
    read_rows,
    write,
    write_returning,
    writing,
)
from ptx_chain_node.store.database import Database

_QUEUED_COLUMNS = [
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


@dataclass(frozen=True)
class NewNotification:
    """The notification every output party gets with a terminal state change."""

    body: str
    deadline: float


async def queue_notifications(
    conn: AsyncConnection, collaboration_id: str, notify: NewNotification, now: float
) -> None:
    """Queue ``notify`` for every output party with an endpoint, in ``conn``'s transaction.

    Notification ids are ``"<collaboration id>/<party id>"``: one per party and end.
    """
    outputs = select(
        (literal(collaboration_id + "/") + parties_t.c.party_id).label("id"),
        parties_t.c.collaboration_id,
        parties_t.c.party_id,
        parties_t.c.endpoint,
        literal(notify.body).label("body"),
        literal(NotificationState.PENDING.value).label("state"),
        literal(0).label("attempts"),
        literal(notify.deadline).label("deadline"),
        literal(now).label("next_attempt_at"),
        literal(now).label("created_at"),
    ).where(
        parties_t.c.collaboration_id == collaboration_id,
        parties_t.c.role == Role.OUTPUT.value,
        parties_t.c.endpoint.is_not(None),  # in-process parties read the store
    )
    await conn.execute(insert(notifications_t).from_select(_QUEUED_COLUMNS, outputs))


def _notification(row: RowMapping) -> Notification:
    return from_row(Notification, row, state=NotificationState(row["state"]))


class NotificationStore:
    """The notifications outbox and its attempts table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def claim_due(
        self, owner: str, lease_seconds: float, *, limit: int = 50
    ) -> list[Notification]:
        """Lease pending notifications that are due and not held by a live sender."""
        now = time.time()
        due = and_(
            notifications_t.c.state == NotificationState.PENDING.value,
            notifications_t.c.next_attempt_at <= now,
        )
        statement = leases.claim(
            notifications_t,
            due,
            owner=owner,
            now=now,
            lease_seconds=lease_seconds,
            limit=limit,
            order_by=notifications_t.c.next_attempt_at,
        )
        return [_notification(row) for row in await write_returning(self.database, statement)]

    async def secret_for(self, notification: Notification) -> str | None:
        """The HMAC key of the notification's output party (None if it was removed)."""
        key = party_key(notification.collaboration_id, Role.OUTPUT, notification.party_id)
        query = select(parties_t.c.notify_secret).where(key)
        async with self.database.engine.connect() as conn:
            value = (await conn.execute(query)).scalar()
        return str(value) if value is not None else None

    async def record_attempt(
        self,
        notification_id: str,
        *,
        at: float,
        duration: float,
        status_code: int | None,
        error: str | None,
        lease_seconds: float,
    ) -> int:
        """Store one attempt (and renew the lease); returns the attempt's number."""
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(notifications_t)
                .where(notifications_t.c.id == notification_id)
                .values(
                    attempts=notifications_t.c.attempts + 1,
                    last_error=error,
                    lease_until=time.time() + lease_seconds,
                )
                .returning(notifications_t.c.attempts)
            )
            number = int(result.scalar_one_or_none() or 0)
            if number:
                await conn.execute(
                    insert(attempts_t).values(
                        notification_id=notification_id,
                        attempt=number,
                        at=at,
                        duration=duration,
                        status_code=status_code,
                        error=error,
                    )
                )
        return number

    async def complete(self, notification_id: str, owner: str, state: NotificationState) -> bool:
        """Mark a leased notification delivered or failed, and release it."""
        values: dict[str, object] = {"state": state.value, "lease_owner": None, "lease_until": None}
        if state is NotificationState.DELIVERED:
            values["delivered_at"] = time.time()
        statement = leases.held_by(notifications_t, notification_id, owner).values(**values)
        return bool(await write(self.database, statement))

    async def release(self, notification_id: str, owner: str) -> bool:
        """Give a leased notification back (shutting down): another sender continues it."""
        statement = leases.held_by(notifications_t, notification_id, owner).values(
            lease_owner=None, lease_until=None
        )
        return bool(await write(self.database, statement))

    async def release_all(self) -> int:
        """Drop every lease (SQLite start-up: the old process is gone)."""
        return await write(self.database, leases.release(notifications_t))

    async def for_collaboration(self, collaboration_id: str) -> list[Notification]:
        """The notifications of one collaboration, oldest first."""
        query = (
            select(notifications_t)
            .where(notifications_t.c.collaboration_id == collaboration_id)
            .order_by(notifications_t.c.created_at, notifications_t.c.party_id)
        )
        return [_notification(row) for row in await read_rows(self.database, query)]

    async def attempts(self, notification_id: str) -> list[NotificationAttempt]:
        """Every attempt made for one notification, in order."""
        query = (
            select(attempts_t)
            .where(attempts_t.c.notification_id == notification_id)
            .order_by(attempts_t.c.attempt)
        )
        rows = await read_rows(self.database, query)
        return [from_row(NotificationAttempt, row) for row in rows]
