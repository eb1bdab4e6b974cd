"""How the coordination store's transactions keep concurrent writers apart.

Every store method is one short transaction. Writes that depend on a collaboration's state
first touch the collaboration row with a guarded ``UPDATE ... WHERE state IN (...)``
(:func:`lock_if`): that takes the row lock on PostgreSQL and the write lock on SQLite, so a
concurrent state change cannot slip between the check and the write. On SQLite this
process's writers also queue on one asyncio lock (:func:`writing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Update, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from ptx_chain_node.coordination.schema import collaborations as collabs_t
from ptx_chain_node.coordination.states import CollabState
from ptx_chain_node.store.database import Database

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


async def write(database: Database, statement: Executable) -> int:
    """Run one write statement in its own transaction; the number of rows it matched."""
    async with writing(database), database.engine.begin() as conn:
        result = await conn.execute(statement)
    return int(result.rowcount)


async def write_returning(database: Database, statement: Executable) -> Sequence[RowMapping]:
    """Run one write statement with ``RETURNING`` in its own transaction; the rows returned."""
    async with writing(database), database.engine.begin() as conn:
        return (await conn.execute(statement)).mappings().all()


async def read_rows(database: Database, query: Executable) -> Sequence[RowMapping]:
    """The rows of one query."""
    async with database.engine.connect() as conn:
        return (await conn.execute(query)).mappings().all()


def in_states(collaboration_id: str, states: Sequence[CollabState]) -> Update:
    """An update of the collaboration row that applies only while it is in ``states``."""
    return update(collabs_t).where(
        collabs_t.c.id == collaboration_id,
        collabs_t.c.state.in_([s.value for s in states]),
    )


async def lock_if(
    conn: AsyncConnection, collaboration_id: str, states: Sequence[CollabState]
) -> bool:
    """Touch the collaboration row when it is in ``states`` (locks it; see module doc)."""
    result = await conn.execute(in_states(collaboration_id, states).values(updated_at=time.time()))
    return bool(result.rowcount)
