"""Leases on rows a replica works on (runs, notifications).

A replica claims rows nobody holds, or whose holder's lease expired (a crashed or stopped
replica), by writing its name and an expiry into ``lease_owner`` and ``lease_until``. Claims
skip rows another claim has locked, so concurrent replicas never take the same row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Table, Update, and_, or_, select, update


def claim(
    table: Table,
    wanted: ColumnElement[bool],
    *,
    owner: str,
    now: float,
    lease_seconds: float,
    limit: int,
    order_by: Any = None,
) -> Update:
    """Lease up to ``limit`` rows matching ``wanted`` that no live lease holds; returns them."""
    claimable = and_(wanted, or_(table.c.lease_until.is_(None), table.c.lease_until < now))
    candidates = select(table.c.id).where(claimable)
    if order_by is not None:
        candidates = candidates.order_by(order_by)
    candidates = candidates.limit(limit).with_for_update(skip_locked=True)
    return (
        update(table)
        .where(table.c.id.in_(candidates), claimable)
        .values(lease_owner=owner, lease_until=now + lease_seconds)
        .returning(*table.c)
    )


def held_by(table: Table, row_id: str, owner: str) -> Update:
    """An update of one row that applies only while ``owner`` holds its lease."""
    return update(table).where(table.c.id == row_id, table.c.lease_owner == owner)


def release(table: Table, owner: str | None = None) -> Update:
    """Drop the leases on ``table`` (all, or ``owner``'s)."""
    statement = update(table).where(table.c.lease_owner.is_not(None))
    if owner is not None:
        statement = statement.where(table.c.lease_owner == owner)
    return statement.values(lease_owner=None, lease_until=None)
