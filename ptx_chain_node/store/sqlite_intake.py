"""Group commit on SQLite through a writer thread that owns its own connection.

The async driver (aiosqlite) hops between its thread and the event loop several times per
transaction (begin, execute, commit, release), and under load every hop waits for the busy
loop to come round: a batch then takes several times its disk time. Here one thread owns a
plain :mod:`sqlite3` connection to the same file (WAL, ``synchronous=FULL``), takes every
pending job at once, inserts and commits them in one go, and hands the outcome back to the
loop with a single ``call_soon_threadsafe`` per batch. While it commits, the next requests
accumulate for the following batch.

The schema stays Alembic's: the thread runs the store's own compiled insert
(:attr:`JobStore.insert_sql`, ``ON CONFLICT (id) DO NOTHING``) and creates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections import deque
from collections.abc import Callable

import structlog

from ptx_chain_node.store.database import Database
from ptx_chain_node.store.jobs import JobStore, NewJob

log = structlog.get_logger(__name__)

_Waiter = tuple[NewJob, "asyncio.Future[None]"]


def sqlite_file(database: Database) -> str | None:
    """The file behind a SQLite database; None for PostgreSQL or an in-memory database."""
    if not database.is_sqlite:
        return None
    path = database.url.split(":///", 1)[1].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def open_connection(path: str) -> sqlite3.Connection:
    """A connection for the writer: WAL, a sync of the WAL at every commit, and no implicit
    transactions (the writer opens and commits its own)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:
            raise RuntimeError("SQLite refused synchronous=FULL")
    except BaseException:
        conn.close()
        raise
    return conn


def _settle(batch: list[_Waiter], error: BaseException | None) -> None:
    """Resolve every waiter of a batch (runs on the event loop)."""
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class SqliteJobIntake:
    """Batches job inserts from concurrent requests into shared commits on a writer thread.

    Same contract as :class:`ptx_chain_node.intake.JobIntake`: :meth:`submit` returns once
    the transaction holding the job committed (a repeated job id is skipped and counts as
    stored), or raises the error that made the batch fail.
    """

    def __init__(self, store: JobStore, path: str, *, max_batch: int = 512) -> None:
        self.store = store
        self.path = path
        self.max_batch = max_batch
        self._pending: deque[_Waiter] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finished: asyncio.Future[None] | None = None

    def start(self) -> None:
        """Open the connection and start the writer (call on the running loop)."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._finished = self._loop.create_future()
        self._stopping = False
        conn = open_connection(self.path)
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="job-intake-sqlite", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Commit what was submitted so far, then close the connection."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        assert self._finished is not None
        await self._finished
        self._thread = None
        leftover = list(self._pending)
        self._pending.clear()
        _settle(leftover, RuntimeError("intake stopped"))

    async def submit(self, job: NewJob) -> None:
        """Return once ``job`` is committed (or was already stored for that chain step)."""
        if self._thread is None or self._stopping:
            raise RuntimeError("intake is not running")
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._pending.append((job, future))
        if not self._wake.is_set():
            self._wake.set()
        return await future

    def _run(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                self._wake.wait()
                # Cleared before draining: a job appended after the drain sets it again.
                self._wake.clear()
                while self._pending:
                    batch: list[_Waiter] = []
                    while self._pending and len(batch) < self.max_batch:
                        batch.append(self._pending.popleft())
                    self._hand_back(batch, self._write(conn, batch))
                if self._stopping:
                    return
        finally:
            conn.close()
            self._call_on_loop(self._finish)

    def _write(self, conn: sqlite3.Connection, batch: list[_Waiter]) -> BaseException | None:
        try:
            rows = self.store.insert_rows([job for job, _ in batch])
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(self.store.insert_sql, rows)
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every waiter of the batch gets the error
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # gone either way
                    conn.rollback()
            log.error("job insert failed", error=type(exc).__name__, batch=len(batch))
            return exc
        return None

    def _hand_back(self, batch: list[_Waiter], error: BaseException | None) -> None:
        self._call_on_loop(_settle, batch, error)

    def _finish(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)

    def _call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self._loop.call_soon_threadsafe(callback, *args)
