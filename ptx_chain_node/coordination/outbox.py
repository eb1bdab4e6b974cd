"""Queued notifications and the record of every delivery attempt, in the store.

A notification is inserted in the same transaction as the state change that causes it
(see :meth:`CollaborationStore.finish`), so a crash cannot lose one. A sender leases it,
records each attempt, and marks it delivered or failed; a lease that expires (a crashed
sender) lets another sender take it over.
"""

from __future__ import annotations

import time

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import RowMapping

from ptx_chain_node.coordination.records import (
    Notification,
    NotificationAttempt,
    NotificationState,
    Role,
)
from ptx_chain_node.coordination.schema import collaboration_parties as parties_t
from ptx_chain_node.coordination.schema import notification_attempts as attempts_t
from ptx_chain_node.coordination.schema import notifications as notifications_t
from ptx_chain_node.coordination.store import writing
from ptx_chain_node.store.database import Database


def _notification(row: RowMapping) -> Notification:
    return Notification(
        id=row["id"],
        collaboration_id=row["collaboration_id"],
        party_id=row["party_id"],
        endpoint=row["endpoint"],
        body=row["body"],
        state=NotificationState(row["state"]),
        attempts=row["attempts"],
        deadline=row["deadline"],
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )


class NotificationStore:
    """The notifications outbox and its attempts table."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def claim_due(
        self, owner: str, lease_seconds: float, *, limit: int = 50
    ) -> list[Notification]:
        """Lease pending notifications that are due and not held by a live sender."""
        now = time.time()
        claimable = and_(
            notifications_t.c.state == NotificationState.PENDING.value,
            notifications_t.c.next_attempt_at <= now,
            or_(notifications_t.c.lease_until.is_(None), notifications_t.c.lease_until < now),
        )
        candidates = (
            select(notifications_t.c.id)
            .where(claimable)
            .order_by(notifications_t.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(notifications_t)
            .where(notifications_t.c.id.in_(candidates), claimable)
            .values(lease_owner=owner, lease_until=now + lease_seconds)
            .returning(*notifications_t.c)
        )
        async with writing(self.database), self.database.engine.begin() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_notification(row) for row in rows]

    async def secret_for(self, notification: Notification) -> str | None:
        """The HMAC key of the notification's output party (None if it was removed)."""
        query = select(parties_t.c.notify_secret).where(
            parties_t.c.collaboration_id == notification.collaboration_id,
            parties_t.c.role == Role.OUTPUT.value,
            parties_t.c.party_id == notification.party_id,
        )
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
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(notifications_t)
                .where(
                    notifications_t.c.id == notification_id,
                    notifications_t.c.lease_owner == owner,
                )
                .values(**values)
            )
        return bool(result.rowcount)

    async def release(self, notification_id: str, owner: str) -> bool:
        """Give a leased notification back (shutting down): another sender continues it."""
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(notifications_t)
                .where(
                    notifications_t.c.id == notification_id,
                    notifications_t.c.lease_owner == owner,
                )
                .values(lease_owner=None, lease_until=None)
            )
        return bool(result.rowcount)

    async def release_all(self) -> int:
        """Drop every lease (SQLite start-up: the old process is gone)."""
        async with writing(self.database), self.database.engine.begin() as conn:
            result = await conn.execute(
                update(notifications_t)
                .where(notifications_t.c.lease_owner.is_not(None))
                .values(lease_owner=None, lease_until=None)
            )
        return int(result.rowcount)

    async def for_collaboration(self, collaboration_id: str) -> list[Notification]:
        """The notifications of one collaboration, oldest first."""
        query = (
            select(notifications_t)
            .where(notifications_t.c.collaboration_id == collaboration_id)
            .order_by(notifications_t.c.created_at, notifications_t.c.party_id)
        )
        async with self.database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_notification(row) for row in rows]

    async def attempts(self, notification_id: str) -> list[NotificationAttempt]:
        """Every attempt made for one notification, in order."""
        query = (
            select(attempts_t)
            .where(attempts_t.c.notification_id == notification_id)
            .order_by(attempts_t.c.attempt)
        )
        async with self.database.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            NotificationAttempt(
                notification_id=row["notification_id"],
                attempt=row["attempt"],
                at=row["at"],
                duration=row["duration"],
                status_code=row["status_code"],
                error=row["error"],
            )
            for row in rows
        ]
