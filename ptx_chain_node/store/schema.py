"""Table definitions (SQLAlchemy Core). Changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("resource", String(200), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("state", String(20), nullable=False),
    Column("context", Text, nullable=False),
    Column("payload", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    # Times an operator sent the job back to ``received`` (the mpc processor's fresh
    # collaborations derive from it).
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("not_before", Float, nullable=False),
    Column("deadline", Float, nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("resume_started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Index("ix_jobs_state_not_before", "state", "not_before"),
)
