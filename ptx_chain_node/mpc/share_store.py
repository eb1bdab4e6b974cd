"""A compute node's durable store: its input shares, its runs and its result shares.

One SQLite file per node (WAL, ``synchronous=FULL``: a share acknowledged to its uploader
survives a crash). Shares are secrets: this module never logs, and no method returns share
values except :meth:`ShareStore.load_shares` and :meth:`ShareStore.result`, which the node
hands to the party process and to an authenticated output party only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ptx_chain_node.errors import Problem, PtxError

metadata = MetaData()

shares_table = Table(
    "node_shares",
    metadata,
    Column("secret_id", String(200), primary_key=True),
    Column("collaboration_id", String(200), nullable=False, index=True),
    Column("party_id", String(200), nullable=False),
    Column("program", String(64), nullable=False),
    Column("length", Integer, nullable=False),
    Column("vector", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

runs_table = Table(
    "node_runs",
    metadata,
    Column("run_id", String(200), primary_key=True),
    Column("collaboration_id", String(200), nullable=False, index=True),
    Column("state", String(20), nullable=False),
    Column("error", Text),
    Column("request", Text, nullable=False),
    Column("result", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


class RunState(StrEnum):
    """A run at one node."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ShareInfo:
    """What may be said about a stored share vector (never its values)."""

    secret_id: str
    collaboration_id: str
    party_id: str
    program: str
    count: int

    def to_json(self) -> dict[str, Any]:
        return {
            "secret_id": self.secret_id,
            "collaboration_id": self.collaboration_id,
            "party_id": self.party_id,
            "program": self.program,
            "count": self.count,
        }


@dataclass(frozen=True)
class RunRecord:
    """A run as a node keeps it; ``request`` is the coordinator's run request."""

    run_id: str
    collaboration_id: str
    state: RunState
    request: dict[str, Any]
    error: str | None = None
    has_result: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _run(row: Any) -> RunRecord:
    return RunRecord(
        run_id=row.run_id,
        collaboration_id=row.collaboration_id,
        state=RunState(row.state),
        request=json.loads(row.request),
        error=row.error,
        has_result=row.result is not None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ShareStore:
    """The store of one node over one SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine: AsyncEngine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    async def open(self) -> None:
        """Create the tables if needed."""
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- input shares ----------------------------------------------------------------------

    async def put_share(self, info: ShareInfo, vector: dict[str, Any]) -> bool:
        """Store a share vector durably; True if new, False for an identical repeat (409 else)."""
        text = json.dumps(vector, separators=(",", ":"), sort_keys=True)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(shares_table).values(
                        secret_id=info.secret_id,
                        collaboration_id=info.collaboration_id,
                        party_id=info.party_id,
                        program=info.program,
                        length=info.count,
                        vector=text,
                        created_at=time.time(),
                    )
                )
            return True
        except IntegrityError:
            pass
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(shares_table).where(shares_table.c.secret_id == info.secret_id)
                )
            ).first()
        if row is not None and row.vector == text and row.party_id == info.party_id:
            return False
        message = "this secret id already holds other shares"
        raise PtxError(message, 409, [Problem("path.secret_id", message)])

    async def share_info(self, secret_id: str) -> ShareInfo | None:
        """The facts of a stored share vector, or None."""
        columns = [c for c in shares_table.c if c.name not in ("vector", "created_at")]
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*columns).where(shares_table.c.secret_id == secret_id))
            ).first()
        if row is None:
            return None
        return ShareInfo(row.secret_id, row.collaboration_id, row.party_id, row.program, row.length)

    async def load_shares(self, secret_ids: Sequence[str]) -> dict[str, tuple[ShareInfo, str]]:
        """Stored vectors (JSON text) by secret id; missing ids are left out."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(shares_table).where(shares_table.c.secret_id.in_(list(secret_ids)))
                )
            ).all()
        return {
            r.secret_id: (
                ShareInfo(r.secret_id, r.collaboration_id, r.party_id, r.program, r.length),
                r.vector,
            )
            for r in rows
        }

    async def delete_shares(self, secret_ids: Sequence[str]) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(shares_table).where(shares_table.c.secret_id.in_(list(secret_ids)))
            )
        return int(result.rowcount or 0)

    async def count_shares(self) -> int:
        async with self.engine.connect() as conn:
            return len((await conn.execute(select(shares_table.c.secret_id))).all())

    # -- runs ------------------------------------------------------------------------------

    async def create_run(self, run_id: str, collaboration_id: str, request: dict[str, Any]) -> bool:
        """Record a new running run; False when ``run_id`` is known already."""
        now = time.time()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(runs_table).values(
                        run_id=run_id,
                        collaboration_id=collaboration_id,
                        state=RunState.RUNNING.value,
                        request=json.dumps(request, separators=(",", ":")),
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def run(self, run_id: str) -> RunRecord | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(runs_table).where(runs_table.c.run_id == run_id))
            ).first()
        return None if row is None else _run(row)

    async def finish_run(
        self, run_id: str, state: RunState, *, error: str | None = None, result: str | None = None
    ) -> bool:
        """End a running run (done with its result shares, or failed with a reason)."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(runs_table)
                .where(runs_table.c.run_id == run_id, runs_table.c.state == RunState.RUNNING.value)
                .values(state=state.value, error=error, result=result, updated_at=time.time())
            )
        return bool(changed.rowcount)

    async def fail_running(self, reason: str) -> int:
        """Fail every run still marked running (after a restart of the node)."""
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(runs_table)
                .where(runs_table.c.state == RunState.RUNNING.value)
                .values(state=RunState.FAILED.value, error=reason, updated_at=time.time())
            )
        return int(changed.rowcount or 0)

    async def result(self, run_id: str) -> tuple[RunRecord, str] | None:
        """A finished run with its result shares (JSON text), or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(runs_table).where(runs_table.c.run_id == run_id))
            ).first()
        if row is None or row.result is None:
            return None
        return _run(row), str(row.result)

    async def delete_collaboration(self, collaboration_id: str) -> int:
        """Forget the collaboration's shares, runs and results; how many rows went."""
        async with self.engine.begin() as conn:
            a = await conn.execute(
                delete(shares_table).where(shares_table.c.collaboration_id == collaboration_id)
            )
            b = await conn.execute(
                delete(runs_table).where(runs_table.c.collaboration_id == collaboration_id)
            )
        return int(a.rowcount or 0) + int(b.rowcount or 0)
