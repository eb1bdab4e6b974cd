"""The job worker: claims jobs, runs their processor, resumes the chain exactly once.

Exactly once: before the resume call the job is written as ``resuming`` (resume in
flight); after the PDC's answer, as ``resumed``. A crash between the two leaves a job in
``resuming`` whose lease expires, and it is sent again on restart: that window (one
resume call, at most ``ResumePolicy.timeout`` seconds) is the only place a duplicate can
come from.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ptx_chain_node.intake import AckLedger
from ptx_chain_node.job import Job, JobState, after_result
from ptx_chain_node.metrics import Metrics
from ptx_chain_node.processor import ProcessingError, Processor
from ptx_chain_node.resume import (
    PDCClient,
    ResumeBodyTooLarge,
    ResumeFailed,
    ResumePolicy,
    resume_body,
)
from ptx_chain_node.store.jobs import JobStore

log = structlog.get_logger(__name__)

#: States in which a job is (still) with its processor; a job taken over in ``shared`` or
#: ``computing`` (after a crash) goes back to it without its payload.
_PROCESSING = (JobState.RECEIVED, JobState.SHARED, JobState.COMPUTING)


@dataclass(frozen=True)
class WorkerSettings:
    """Concurrency and leasing of the worker."""

    concurrency: int = 16
    lease_seconds: float = 30.0
    poll_interval: float = 1.0


class Worker:
    """Runs jobs from the store until stopped. One per gateway process."""

    def __init__(
        self,
        store: JobStore,
        processors: Callable[[str], Processor],
        pdc: PDCClient,
        policy: ResumePolicy,
        *,
        settings: WorkerSettings | None = None,
        acks: AckLedger | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.processors = processors
        self.pdc = pdc
        self.policy = policy
        self.settings = settings or WorkerSettings()
        self.acks = acks or AckLedger()
        self.metrics = metrics or Metrics()
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        if self._loop_task is None:
            self._stopping = False
            self._loop_task = asyncio.create_task(self._loop(), name="job-worker")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give running jobs ``grace`` seconds, then cancel (leases lapse)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._running:
            _, pending = await asyncio.wait(list(self._running.values()), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def wake(self) -> None:
        """A job may be actionable now (new job, ACK sent)."""
        self._wake.set()

    async def wait_settled(self, job_id: str, timeout: float) -> Job | None:
        """Wait until ``job_id`` has a result or ended; None on timeout (sync mode)."""
        deadline = time.monotonic() + timeout
        while True:
            job = await self.store.get(job_id, with_data=True)
            if job is not None and job.state in (JobState.COMPLETED, JobState.FAILED):
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            event = self._finished.setdefault(job_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                # The event covers this process; the short poll covers other replicas.
                await asyncio.wait_for(event.wait(), min(remaining, 0.5))

    def _settle(self, job_id: str) -> None:
        event = self._finished.pop(job_id, None)
        if event is not None:
            event.set()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed = False
            while len(self._running) < self.settings.concurrency and not self._stopping:
                try:
                    job = await self.store.claim(
                        self.owner, self.settings.lease_seconds, exclude=list(self._running)
                    )
                except Exception as exc:  # noqa: BLE001 - store down: retry after a pause
                    log.warning("claim failed", error=type(exc).__name__)
                    break
                if job is None:
                    break
                claimed = True
                task = asyncio.create_task(self._run(job), name=f"job-{job.id}")
                self._running[job.id] = task
                task.add_done_callback(functools.partial(self._done, job.id))
            if self._stopping:
                break
            timeout = self.settings.poll_interval
            if not claimed:
                with contextlib.suppress(Exception):
                    due = await self.store.next_due()
                    if due is not None:
                        timeout = max(0.01, min(timeout, due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _done(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    async def _renew(self, job_id: str) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            if not await self.store.renew(job_id, self.owner, self.settings.lease_seconds):
                log.warning("lease lost", job_id=job_id)
                return

    async def _run(self, job: Job) -> None:
        bound = log.bind(
            job_id=job.id, chain_id=job.context.chain_id, target_id=job.context.target_id
        )
        renewal = asyncio.create_task(self._renew(job.id))
        try:
            if job.state in _PROCESSING:
                await self._process(job, bound)
            else:
                await self._resume(job, bound)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a job never takes the worker down
            bound.error("job crashed", error=type(exc).__name__)
            await self.store.finish(
                job.id, self.owner, JobState.FAILED, error=f"internal error: {type(exc).__name__}"
            )
            self._settle(job.id)
        finally:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)

    async def _process(self, job: Job, bound: structlog.typing.FilteringBoundLogger) -> None:
        full = await self.store.get(job.id, with_data=True)
        if full is None:
            return
        processor = self.processors(job.resource)

        async def progress(state: JobState) -> None:
            drop = state == JobState.SHARED  # shares are uploaded: no plaintext kept
            await self.store.set_state(job.id, self.owner, state, drop_payload=drop)

        try:
            result = await processor.process(full, progress)
        except ProcessingError as exc:
            state = JobState.HELD if exc.hold else JobState.FAILED
            bound.warning("processing failed", reason=exc.reason, state=state.value)
            await self.store.finish(job.id, self.owner, state, error=exc.reason)
            self._settle(job.id)
            return
        next_state = after_result(job.context, job.mode)
        if next_state == JobState.RESULT_READY:
            try:
                resume_body(job.context, result, self.policy.max_body_bytes)
            except ResumeBodyTooLarge as exc:
                bound.warning("result too large", reason=str(exc))
                await self.store.finish(job.id, self.owner, JobState.FAILED, error=str(exc))
                return
        await self.store.set_result(job.id, self.owner, result, next_state, keep_payload=False)
        bound.info("result ready", state=next_state.value)
        self._settle(job.id)
        self._wake.set()

    async def _resume(self, job: Job, bound: structlog.typing.FilteringBoundLogger) -> None:
        allowed = self.acks.resume_allowed_at(job.id, self.policy.delay)
        if allowed is None or allowed > time.time():
            retry_at = allowed if allowed is not None else time.time() + self.policy.delay
            await self.store.release(job.id, self.owner, not_before=max(job.not_before, retry_at))
            return
        full = await self.store.get(job.id, with_data=True)
        if full is None or full.result is None:
            return
        try:
            body = resume_body(job.context, full.result, self.policy.max_body_bytes)
        except ResumeBodyTooLarge as exc:
            await self.store.finish(job.id, self.owner, JobState.FAILED, error=str(exc))
            return
        started = full.resume_started_at or time.time()
        remaining = started + self.policy.deadline - time.time()

        async def on_attempt(_number: int) -> None:
            # Durable "resume in flight" (and the attempt count) before every call.
            if not await self.store.start_resume(job.id, self.owner):
                raise ResumeFailed("lease lost before resuming")
            self.metrics.resume_attempts.inc()

        async def on_error(error: str) -> None:
            self.metrics.resume_failures.labels("transient").inc()
            bound.warning("resume attempt failed", error=error)
            await self.store.record_error(job.id, self.owner, error)

        try:
            await self.pdc.resume(
                body,
                policy=self.policy,
                remaining=remaining,
                on_attempt=on_attempt,
                on_error=on_error,
            )
        except ResumeFailed as exc:
            self.metrics.resume_failures.labels("final").inc()
            bound.error("resume failed", reason=str(exc))
            await self.store.finish(job.id, self.owner, JobState.FAILED, error=str(exc))
            return
        await self.store.finish(job.id, self.owner, JobState.RESUMED)
        bound.info("resumed")
