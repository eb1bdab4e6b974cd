"""The job store: durable chain steps, claimed under a lease so replicas never share one.

Every method is one short transaction. Updates made by a worker are guarded by its lease
(``lease_owner``), so a replica whose lease expired cannot overwrite another's work.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.job import Job, JobResult, JobState, NotRetryable, retry_target
from ptx_chain_node.payload import ChainPayload, dump_payload, load_payload
from ptx_chain_node.store.database import Database
from ptx_chain_node.store.schema import jobs

_INSERT_COLUMNS = [
    "id",
    "resource",
    "mode",
    "state",
    "context",
    "payload",
    "attempts",
    "created_at",
    "updated_at",
    "not_before",
    "deadline",
]
#: States a worker acts on: process a received job, resume a ready one, re-send one whose
#: resume was in flight when its worker died.
_ACTIONABLE = (
    JobState.RECEIVED,
    JobState.SHARED,
    JobState.COMPUTING,
    JobState.RESULT_READY,
    JobState.RESUMING,
)
_SUMMARY_COLUMNS = [c for c in jobs.c if c.name not in ("payload", "result")]


@dataclass(frozen=True)
class NewJob:
    """A job to insert; ``payload`` is the body already reduced to what processing needs.

    ``payload`` may also be that already as its stored JSON text (:func:`dump_payload`): a
    request can then let go of the parsed body before the insert's commit.
    """

    id: str
    resource: str
    mode: str
    context: ChainContext
    payload: ChainPayload | str
    not_before: float
    deadline: float | None = None


def _row_to_job(row: RowMapping) -> Job:
    payload = row.get("payload")
    result = row.get("result")
    return Job(
        id=row["id"],
        resource=row["resource"],
        mode=row["mode"],
        state=JobState(row["state"]),
        context=ChainContext.model_validate_json(row["context"]),
        payload=load_payload(payload) if payload else None,
        result=JobResult.model_validate_json(result) if result else None,
        attempts=row["attempts"],
        retries=row["retries"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        not_before=row["not_before"],
        resume_started_at=row["resume_started_at"],
        finished_at=row["finished_at"],
    )


class JobStore:
    """Jobs in SQLite or PostgreSQL through the same SQLAlchemy Core statements."""

    def __init__(self, database: Database) -> None:
        self.database = database
        insert = sqlite.insert if database.is_sqlite else postgresql.insert
        statement = (
            insert(jobs)
            .values({name: bindparam(name) for name in _INSERT_COLUMNS})
            .on_conflict_do_nothing(index_elements=["id"])
        )
        # Compiled once for this database's dialect and paramstyle; the intake's hot path
        # then hands plain tuples to the driver's executemany.
        compiled = statement.compile(dialect=database.engine.dialect)
        #: The batch insert in the driver's own SQL and paramstyle (``?`` on SQLite, which
        #: the SQLite intake's own connection runs as well); parameters from :meth:`insert_rows`.
        self.insert_sql = str(compiled)
        self._insert_order = [_INSERT_COLUMNS.index(name) for name in compiled.positiontup or ()]

    async def insert_many(self, new_jobs: Sequence[NewJob]) -> None:
        """Insert jobs in one transaction (one commit for the batch); skip existing ids.

        A job that already exists is left untouched, which makes repeated deliveries of
        one chain step harmless. (No RETURNING: it costs a third more per row, and the
        ACK is the same for a new and a repeated delivery.)
        """
        if not new_jobs:
            return
        rows = self.insert_rows(new_jobs)
        async with self.database.engine.begin() as conn:
            await conn.exec_driver_sql(self.insert_sql, rows)

    def insert_rows(self, new_jobs: Sequence[NewJob]) -> list[tuple[Any, ...]]:
        """The parameters of :attr:`insert_sql` for ``new_jobs``: one tuple per distinct id."""
        now = time.time()
        received = JobState.RECEIVED.value
        rows: dict[str, tuple[Any, ...]] = {}
        for job in new_jobs:
            if job.id in rows:
                continue
            values = (
                job.id,
                job.resource,
                job.mode,
                received,
                job.context.model_dump_json(),
                job.payload if isinstance(job.payload, str) else dump_payload(job.payload),
                0,
                now,
                now,
                job.not_before,
                job.deadline,
            )
            rows[job.id] = tuple(values[i] for i in self._insert_order)
        return list(rows.values())

    async def get(self, job_id: str, *, with_data: bool = False) -> Job | None:
        """One job; the payload and result only when ``with_data``."""
        columns = list(jobs.c) if with_data else _SUMMARY_COLUMNS
        async with self.database.engine.connect() as conn:
            row = (await conn.execute(select(*columns).where(jobs.c.id == job_id))).mappings()
            first = row.first()
        return _row_to_job(first) if first else None

    async def list(
        self, *, state: JobState | None = None, limit: int = 100, offset: int = 0
    ) -> list[Job]:
        """Jobs, newest first, without their data."""
        query = select(*_SUMMARY_COLUMNS).order_by(jobs.c.created_at.desc(), jobs.c.id)
        if state is not None:
            query = query.where(jobs.c.state == state.value)
        async with self.database.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
        return [_row_to_job(row) for row in rows]

    async def counts(self) -> dict[str, int]:
        """Number of jobs by state."""
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        async with self.database.engine.connect() as conn:
            return {row[0]: row[1] for row in await conn.execute(query)}

    def _claimable(self, now: float) -> Any:
        return and_(
            jobs.c.state.in_([s.value for s in _ACTIONABLE]),
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until < now),
            or_(jobs.c.state == JobState.RECEIVED.value, jobs.c.not_before <= now),
        )

    async def claim(
        self, owner: str, lease_seconds: float, *, exclude: Sequence[str] = ()
    ) -> Job | None:
        """Lease the oldest actionable job to ``owner``, or return None.

        The job comes without its payload and result (:meth:`get` ``with_data`` reads them
        when needed): a claim does not parse a large payload it does not use.
        PostgreSQL skips rows another replica is claiming (``FOR UPDATE SKIP LOCKED``);
        SQLite serialises writers, so the same statement is atomic there too.
        """
        now = time.time()
        candidate = (
            select(jobs.c.id)
            .where(self._claimable(now))
            .order_by(jobs.c.not_before, jobs.c.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            candidate = candidate.where(jobs.c.id.not_in(list(exclude)))
        statement = (
            update(jobs)
            .where(jobs.c.id == candidate.scalar_subquery())
            .where(self._claimable(now))
            .values(lease_owner=owner, lease_until=now + lease_seconds)
            .returning(*_SUMMARY_COLUMNS)
        )
        async with self.database.engine.begin() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return _row_to_job(row) if row else None

    async def next_due(self) -> float | None:
        """When the earliest waiting job becomes actionable (its ``not_before``)."""
        query = select(func.min(jobs.c.not_before)).where(
            jobs.c.state.in_([JobState.RESULT_READY.value, JobState.RESUMING.value])
        )
        async with self.database.engine.connect() as conn:
            value = (await conn.execute(query)).scalar()
        return float(value) if value is not None else None

    async def _update(self, job_id: str, owner: str | None, **values: Any) -> bool:
        values["updated_at"] = time.time()
        statement = update(jobs).where(jobs.c.id == job_id)
        if owner is not None:
            statement = statement.where(jobs.c.lease_owner == owner)
        async with self.database.engine.begin() as conn:
            result = await conn.execute(statement.values(**values))
        return bool(result.rowcount)

    async def renew(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Extend a lease; False when ``owner`` lost it."""
        return await self._update(job_id, owner, lease_until=time.time() + lease_seconds)

    async def set_state(
        self, job_id: str, owner: str, state: JobState, *, drop_payload: bool = False
    ) -> bool:
        """Record an intermediate state (e.g. ``shared``, ``computing``) under the lease."""
        if drop_payload:
            return await self._update(job_id, owner, state=state.value, payload=None)
        return await self._update(job_id, owner, state=state.value)

    async def set_result(
        self, job_id: str, owner: str, result: JobResult, state: JobState, *, keep_payload: bool
    ) -> bool:
        """Store the result and release the lease; drop the payload unless asked to keep it."""
        values: dict[str, Any] = {
            "result": result.model_dump_json(),
            "state": state.value,
            "lease_owner": None,
            "lease_until": None,
        }
        if not keep_payload:
            values["payload"] = None
        if state in (JobState.COMPLETED,):
            values["finished_at"] = time.time()
        return await self._update(job_id, owner, **values)

    async def start_resume(self, job_id: str, owner: str) -> bool:
        """Write "resume in flight" (and count the attempt) before the resume call."""
        now = time.time()
        async with self.database.engine.begin() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
                .values(
                    state=JobState.RESUMING.value,
                    attempts=jobs.c.attempts + 1,
                    resume_started_at=func.coalesce(jobs.c.resume_started_at, now),
                    updated_at=now,
                )
            )
        return bool(result.rowcount)

    async def record_error(self, job_id: str, owner: str, error: str) -> bool:
        """Remember the last transient error (the job stays where it is)."""
        return await self._update(job_id, owner, last_error=error)

    async def finish(
        self, job_id: str, owner: str | None, state: JobState, *, error: str | None = None
    ) -> bool:
        """Move a job to a terminal (or held) state and release the lease.

        The payload is dropped, except for ``held``: a job held before its plaintext was
        dropped (``shared``) keeps it for :meth:`retry` until it is retried (and processed)
        or failed.
        """
        values: dict[str, Any] = {
            "state": state.value,
            "lease_owner": None,
            "lease_until": None,
            "finished_at": time.time(),
        }
        if state != JobState.HELD:
            values["payload"] = None
        if error is not None:
            values["last_error"] = error
        return await self._update(job_id, owner, **values)

    async def retry(self, job_id: str) -> Job | None:
        """Send a ``held`` or ``failed`` job back to where it can run (:func:`retry_target`).

        Clears the lease, the last error and the finish time; makes the job due now; a
        return to ``result_ready`` restarts the resume deadline; a return to ``received``
        counts a retry. None for an unknown id; :class:`~ptx_chain_node.job.NotRetryable`
        when the job cannot be retried (or changed state meanwhile).
        """
        now = time.time()
        probe = select(
            jobs.c.state,
            jobs.c.payload.is_not(None).label("has_payload"),
            jobs.c.result.is_not(None).label("has_result"),
        ).where(jobs.c.id == job_id)
        async with self.database.engine.begin() as conn:
            row = (await conn.execute(probe.with_for_update())).mappings().first()
            if row is None:
                return None
            current = JobState(row["state"])
            target = retry_target(
                current, has_payload=bool(row["has_payload"]), has_result=bool(row["has_result"])
            )
            values: dict[str, Any] = {
                "state": target.value,
                "lease_owner": None,
                "lease_until": None,
                "last_error": None,
                "finished_at": None,
                "not_before": now,
                "updated_at": now,
            }
            if target == JobState.RESULT_READY:
                values["resume_started_at"] = None
            if target == JobState.RECEIVED:
                values["retries"] = jobs.c.retries + 1
            statement = (
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == current.value)
                .values(**values)
                .returning(*_SUMMARY_COLUMNS)
            )
            updated = (await conn.execute(statement)).mappings().first()
        if updated is None:
            raise NotRetryable(f"job {job_id} changed state during the retry")
        return _row_to_job(updated)

    async def release(self, job_id: str, owner: str, *, not_before: float | None = None) -> bool:
        """Give a job back without changing its state (e.g. shutting down)."""
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None}
        if not_before is not None:
            values["not_before"] = not_before
        return await self._update(job_id, owner, **values)

    async def release_all(self, owner_prefix: str = "") -> int:
        """Drop every lease (SQLite start-up: one process owns the file, old leases are dead)."""
        statement = update(jobs).where(jobs.c.lease_owner.is_not(None))
        if owner_prefix:
            statement = statement.where(jobs.c.lease_owner.startswith(owner_prefix))
        async with self.database.engine.begin() as conn:
            result = await conn.execute(statement.values(lease_owner=None, lease_until=None))
        return int(result.rowcount)
