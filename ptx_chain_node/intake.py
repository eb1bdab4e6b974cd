"""Job intake with group commit, and the record of which ACKs have been sent.

Each delivery must be durable before its ACK. Committing one transaction per request
costs one fsync per request; instead, requests that arrive together are written in one
transaction (group commit) and each waits for the commit that holds its job. Under load
this amortises the sync; alone, a request commits at once. A SQLite file gets its own
writer process (:mod:`ptx_chain_node.store.sqlite_intake`); PostgreSQL (or in-memory SQLite)
goes through the async store (:class:`JobIntake`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from ptx_chain_node.store.database import Database
from ptx_chain_node.store.jobs import JobStore, NewJob
from ptx_chain_node.store.sqlite_intake import SqliteJobIntake, sqlite_file

log = structlog.get_logger(__name__)


class Intake(Protocol):
    """Durable job intake: :meth:`submit` returns only after the job's commit."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def submit(self, job: NewJob) -> Awaitable[None]: ...


def intake_for(database: Database, store: JobStore) -> Intake:
    """The intake for a store: a writer thread on a SQLite file, else the async store."""
    path = sqlite_file(database)
    if path is not None:
        return SqliteJobIntake(store, path)
    return JobIntake(store)


class JobIntake:
    """Batches job inserts from concurrent requests into shared commits.

    Requests append to a plain list (no queue machinery on the hot path); one writer
    task takes the whole list, commits it, and resolves one future per request.
    """

    def __init__(self, store: JobStore, *, max_batch: int = 512) -> None:
        self.store = store
        self.max_batch = max_batch
        self._pending: list[tuple[NewJob, asyncio.Future[None]]] = []
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the writer task."""
        if self._task is None:
            self._task = asyncio.create_task(self._writer(), name="job-intake")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._fail(self._pending, RuntimeError("intake stopped"))
        self._pending = []

    async def submit(self, job: NewJob) -> None:
        """Return once ``job`` is committed (or was already stored for that chain step)."""
        if self._task is None:
            raise RuntimeError("intake is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        self._ready.set()
        return await future

    @staticmethod
    def _fail(batch: list[tuple[NewJob, asyncio.Future[None]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)

    async def _writer(self) -> None:
        while True:
            await self._ready.wait()
            batch = self._pending[: self.max_batch]
            self._pending = self._pending[self.max_batch :]
            if not self._pending:
                self._ready.clear()
            try:
                await self.store.insert_many([job for job, _ in batch])
            except asyncio.CancelledError:
                self._fail(batch, RuntimeError("intake stopped"))
                raise
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                log.error("job insert failed", error=type(exc).__name__, batch=len(batch))
                self._fail(batch, exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


@dataclass
class AckLedger:
    """When this process sent each ACK, so no resume leaves before its ACK plus a delay.

    Jobs stored by this process but not yet acknowledged are *pending*; a job not known
    here (stored before a restart, or by another replica) relies on its stored
    ``not_before``, which was set at insert time to the insert time plus the delay.
    """

    pending: set[str] = field(default_factory=set)
    sent_at: dict[str, float] = field(default_factory=dict)
    max_entries: int = 100_000

    def expect(self, job_id: str) -> None:
        self.pending.add(job_id)

    def sent(self, job_id: str) -> None:
        self.pending.discard(job_id)
        self.sent_at[job_id] = time.time()
        if len(self.sent_at) > self.max_entries:
            for stale in list(self.sent_at)[: self.max_entries // 2]:
                del self.sent_at[stale]

    def failed(self, job_id: str) -> None:
        """The response could not be sent: the PDC still suspends, so treat it as sent."""
        self.sent(job_id)

    def resume_allowed_at(self, job_id: str, delay: float) -> float | None:
        """Earliest resume time known here; None while the ACK is still being sent."""
        if job_id in self.pending:
            return None
        sent = self.sent_at.get(job_id)
        return sent + delay if sent is not None else 0.0
