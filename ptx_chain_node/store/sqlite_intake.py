"""Group commit on a SQLite file through a writer process with its own connection.

The async driver (aiosqlite) hops between its thread and the event loop several times per
transaction, and a writer thread of our own fares little better: after each wake-up and
each SQLite call it needs the GIL back, and the busy event loop holds it for up to the
switch interval (5 ms) every time. Here a child process (:mod:`sqlite_writer`) owns the
connection. The event loop gathers the jobs submitted during one loop iteration, turns
them into rows (:meth:`JobStore.insert_rows`) and writes them to the process as one frame;
the process commits every frame it has when it gets to them in one transaction
(``synchronous=FULL``), and answers with the batch ids, which resolve the waiting
requests. Nothing waits on the GIL of the other side.

If the writer process dies, the batches it had not confirmed fail (their requests get no
ACK) and a new process starts for the next ones.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import cast

import structlog
from sqlalchemy.engine import make_url

from ptx_chain_node.store import sqlite_writer
from ptx_chain_node.store.database import Database
from ptx_chain_node.store.jobs import JobStore, NewJob

log = structlog.get_logger(__name__)

_WRITER = str(Path(sqlite_writer.__file__).resolve())


def sqlite_file(database: Database) -> str | None:
    """The file behind a SQLite database; None for PostgreSQL or an in-memory database."""
    if not database.is_sqlite:
        return None
    path = make_url(database.url).database
    return path if path and path != ":memory:" else None


def writer_error(error: tuple[str, str]) -> Exception:
    """The exception a batch's waiters get for the writer's ``(class name, message)``."""
    name, message = error
    kind = getattr(sqlite3, name, None)
    if isinstance(kind, type) and issubclass(kind, sqlite3.Error):
        return kind(message)
    return RuntimeError(f"{name}: {message}")


class _WriterProtocol(asyncio.SubprocessProtocol):
    """Reads the writer's replies and settles the batches they name."""

    def __init__(self, intake: SqliteJobIntake) -> None:
        self.intake = intake
        self.buffer = bytearray()
        self.exited = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd != 1 or isinstance(data, str):
            return
        self.buffer += data
        for batch_ids, error in sqlite_writer.split_frames(self.buffer):
            failure = writer_error(error) if error is not None else None
            if failure is not None:
                log.error("job insert failed", error=type(failure).__name__)
            for batch_id in batch_ids:
                self.intake._settle(batch_id, failure)

    def connection_lost(self, exc: Exception | None) -> None:
        # The process exited and its pipes are drained: every reply it wrote was read.
        if not self.exited.done():
            self.exited.set_result(None)
        self.intake._writer_exited(self)


class SqliteJobIntake:
    """Batches job inserts from concurrent requests into shared commits in a writer process.

    Same contract as :class:`ptx_chain_node.intake.JobIntake`: :meth:`submit` returns once
    the transaction holding the job committed (a repeated job id is skipped and counts as
    stored), or raises the error that made its batch fail.
    """

    def __init__(self, store: JobStore, path: str) -> None:
        self.store = store
        self.path = path
        self._pending: list[tuple[NewJob, asyncio.Future[None]]] = []
        self._in_flight: dict[int, list[asyncio.Future[None]]] = {}
        self._next_id = 0
        self._flush_scheduled = False
        self._running = False
        self._transport: asyncio.SubprocessTransport | None = None
        self._protocol: _WriterProtocol | None = None
        self._starting: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def writer_pid(self) -> int | None:
        """The process id of the running writer (None while there is none)."""
        return self._transport.get_pid() if self._transport is not None else None

    async def start(self) -> None:
        """Start the writer process."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        self._running = True
        await self._spawn()

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _WriterProtocol(self),
            sys.executable,
            "-I",
            _WRITER,
            self.path,
            stderr=None,
            # Out of the gateway's process group: a Ctrl-C or a group-wide SIGTERM stops
            # the gateway gracefully, which then ends the writer by closing its input.
            start_new_session=True,
        )
        self._transport, self._protocol = transport, protocol
        self._send(self.store.insert_sql)
        if self._pending:
            self._schedule_flush()

    async def stop(self) -> None:
        """Let the writer commit what it was sent, then end it; later submits fail."""
        if not self._running:
            return
        self._running = False
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        self._flush()
        transport, protocol = self._transport, self._protocol
        if transport is not None and protocol is not None:
            stdin = transport.get_pipe_transport(0)
            if stdin is not None:
                stdin.close()  # end of input: the writer finishes and exits
            await protocol.exited
            transport.close()
        self._fail_all(RuntimeError("intake stopped"))

    def submit(self, job: NewJob) -> asyncio.Future[None]:
        """A future done once ``job`` is committed (or was already stored for that chain
        step), or failed with the error that made its batch fail.

        A plain function returning the future (not a coroutine): one frame less on the
        path of every request.
        """
        if not self._running or self._loop is None:
            raise RuntimeError("intake is not running")
        future: asyncio.Future[None] = self._loop.create_future()
        self._pending.append((job, future))
        if not self._flush_scheduled:
            self._schedule_flush()
        return future

    def _schedule_flush(self) -> None:
        assert self._loop is not None
        self._flush_scheduled = True
        self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send everything submitted since the last flush as one batch."""
        self._flush_scheduled = False
        if not self._pending or self._transport is None:
            return
        batch, self._pending = self._pending, []
        try:
            rows = self.store.insert_rows([job for job, _ in batch])
        except Exception as exc:  # noqa: BLE001 - the batch's waiters get the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self._next_id += 1
        self._in_flight[self._next_id] = [future for _, future in batch]
        self._send((self._next_id, rows))

    def _send(self, message: object) -> None:
        assert self._transport is not None
        # A write transport (uvloop's is not a subclass of asyncio.WriteTransport).
        stdin = cast(asyncio.WriteTransport, self._transport.get_pipe_transport(0))
        stdin.write(sqlite_writer.frame(message))

    def _settle(self, batch_id: int, error: BaseException | None) -> None:
        for future in self._in_flight.pop(batch_id, ()):
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    def _writer_exited(self, protocol: _WriterProtocol) -> None:
        if protocol is not self._protocol:
            return
        assert self._transport is not None
        self._transport.close()
        self._transport, self._protocol = None, None
        unconfirmed = RuntimeError("job writer exited before confirming the commit")
        for batch_id in list(self._in_flight):
            self._settle(batch_id, unconfirmed)
        if self._running:
            log.error("job writer exited; starting a new one")
            self._starting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._spawn()
        except Exception as exc:  # noqa: BLE001 - waiting requests get the error
            log.error("job writer did not start", error=type(exc).__name__)
            self._fail_all(exc)
        finally:
            self._starting = None

    def _fail_all(self, error: BaseException) -> None:
        batch, self._pending = self._pending, []
        for _, future in batch:
            if not future.done():
                future.set_exception(error)
        for batch_id in list(self._in_flight):
            self._settle(batch_id, error)
