"""Coordination tables (SQLAlchemy Core) on the store's shared metadata.

Changes go through an Alembic migration (``0002_coordination`` created these).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from ptx_chain_node.store.schema import metadata


def _collaboration_id() -> Column[str]:
    """The owning collaboration's id: the row goes when the collaboration is deleted."""
    return Column(
        "collaboration_id",
        String(36),
        ForeignKey("collaborations.id", ondelete="CASCADE"),
        nullable=False,
    )


def _lease() -> tuple[Column[str], Column[float]]:
    """The lease of a replica working on the row (see :mod:`ptx_chain_node.coordination.leases`)."""
    return (
        Column("lease_owner", String(64), nullable=True),
        Column("lease_until", Float, nullable=True),
    )


collaborations = Table(
    "collaborations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("definition", Text, nullable=False),
    Column("program_sha256", String(64), nullable=False),
    Column("engine", String(50), nullable=False),
    Column("state", String(16), nullable=False),
    Column("deadline", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("run_id", String(36), nullable=True),
    Column("run_attempts", Integer, nullable=False, default=0),
    Column("run_started_at", Float, nullable=True),
    *_lease(),
    Column("result_ids", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_collaborations_state_deadline", "state", "deadline"),
)

collaboration_parties = Table(
    "collaboration_parties",
    metadata,
    _collaboration_id(),
    Column("role", String(8), nullable=False),
    Column("party_id", String(100), nullable=False),
    Column("token_sha256", String(64), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("identity", String(500), nullable=True),
    Column("endpoint", String(2000), nullable=True),
    Column("notify_secret", String(200), nullable=True),
    Column("approved_sha256", String(64), nullable=True),
    Column("secret_ids", Text, nullable=True),
    Column("rows", Integer, nullable=True),
    Column("confirmed_at", Float, nullable=True),
    PrimaryKeyConstraint("collaboration_id", "role", "party_id"),
)

notifications = Table(
    "collaboration_notifications",
    metadata,
    Column("id", String(160), primary_key=True),  # "<collaboration id>/<party id>"
    _collaboration_id(),
    Column("party_id", String(100), nullable=False),
    Column("endpoint", String(2000), nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("deadline", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    *_lease(),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    Index("ix_collaboration_notifications_state_next", "state", "next_attempt_at"),
)

notification_attempts = Table(
    "collaboration_notification_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "notification_id",
        String(160),
        ForeignKey("collaboration_notifications.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("duration", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
)
