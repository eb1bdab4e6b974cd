"""Jobs: one chain step a PDC handed to this node, and its state machine.

States (DESIGN.md): ``received -> shared -> computing -> result_ready -> resuming ->
resumed``; ``completed`` for a final node or a synchronous (adapter-mode) answer;
``failed`` with a reason; ``held`` for an operator to retry. Transitions are pure.

A retry (:func:`retry_target`, ``ptx-chain-node jobs retry``) sends a ``held`` or
``failed`` job back to where it can run again: ``received`` while it still has its
payload, ``result_ready`` when it has a result, else (``held`` only) ``computing``, to
wait again for the collaborations its shares went to.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.payload import ChainPayload


class JobState(StrEnum):
    RECEIVED = "received"
    SHARED = "shared"
    COMPUTING = "computing"
    RESULT_READY = "result_ready"
    RESUMING = "resuming"
    RESUMED = "resumed"
    COMPLETED = "completed"
    FAILED = "failed"
    HELD = "held"


TERMINAL = frozenset({JobState.RESUMED, JobState.COMPLETED, JobState.FAILED})

_ALLOWED: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVED: frozenset(
        {
            JobState.SHARED,
            JobState.COMPUTING,
            JobState.RESULT_READY,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.HELD,
        }
    ),
    JobState.SHARED: frozenset(
        {
            JobState.COMPUTING,
            JobState.RESULT_READY,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.HELD,
        }
    ),
    JobState.COMPUTING: frozenset(
        {JobState.RESULT_READY, JobState.COMPLETED, JobState.FAILED, JobState.HELD}
    ),
    JobState.RESULT_READY: frozenset({JobState.RESUMING, JobState.FAILED, JobState.HELD}),
    JobState.RESUMING: frozenset(
        {JobState.RESUMING, JobState.RESUMED, JobState.FAILED, JobState.HELD}
    ),
    JobState.HELD: frozenset(
        {JobState.RECEIVED, JobState.COMPUTING, JobState.RESULT_READY, JobState.FAILED}
    ),
    JobState.RESUMED: frozenset(),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset({JobState.RECEIVED, JobState.RESULT_READY}),
}


class InvalidTransition(ValueError):
    """A state change the job state machine does not allow."""


def transition(current: JobState, target: JobState) -> JobState:
    """Return ``target`` if a job may go from ``current`` to it, else raise."""
    if target not in _ALLOWED[current]:
        raise InvalidTransition(f"job cannot go from {current} to {target}")
    return target


class NotRetryable(InvalidTransition):
    """A job a retry cannot send anywhere (wrong state, or nothing left to run from)."""


def retry_target(state: JobState, *, has_payload: bool, has_result: bool) -> JobState:
    """Where a retry sends a ``held`` or ``failed`` job, or raise :class:`NotRetryable`.

    A result is never recomputed: a job with one goes back to ``result_ready`` (resume
    again). Otherwise a job with its payload starts over from ``received`` (the ``mpc``
    processor then uses fresh collaborations). A held job without either was held after
    its shares were uploaded: it waits again (``computing``) for its collaborations. A
    failed job without either has nothing left to run from.
    """
    if state not in (JobState.HELD, JobState.FAILED):
        raise NotRetryable(f"a {state.value} job cannot be retried (only held or failed)")
    if has_result:
        target = JobState.RESULT_READY
    elif has_payload:
        target = JobState.RECEIVED
    elif state == JobState.HELD:
        target = JobState.COMPUTING
    else:
        raise NotRetryable("the failed job has neither its payload nor a result to retry from")
    return transition(state, target)


def after_result(context: ChainContext, mode: Literal["async", "sync"]) -> JobState:
    """The state a job takes once its result is known.

    A final node and a synchronous answer complete; a middle node waits to be resumed.
    """
    if mode == "sync" or context.is_final:
        return JobState.COMPLETED
    return JobState.RESULT_READY


def job_id_for(chain_id: str, target_id: str) -> str:
    """The job id of a chain step: the same (chainId, targetId) always gives the same id.

    This is what makes a repeated delivery land on the same job and the same ACK.
    """
    h = hashlib.sha256(f"ptx-job\n{chain_id}\n{target_id}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


class JobResult(BaseModel):
    """What a processor produced: the resume ``data`` and ``params``."""

    model_config = ConfigDict(extra="forbid")

    data: Any = None
    params: dict[str, Any] | None = None


class Job(BaseModel):
    """A job as stored (the payload is only loaded for processing)."""

    id: str
    resource: str
    mode: Literal["async", "sync"]
    state: JobState
    context: ChainContext
    payload: ChainPayload | None = None
    result: JobResult | None = None
    attempts: int = 0
    retries: int = 0
    last_error: str | None = None
    created_at: float
    updated_at: float
    not_before: float
    resume_started_at: float | None = None
    finished_at: float | None = None

    def summary(self) -> dict[str, Any]:
        """What ``GET /jobs`` shows: state, attempts, timestamps, last error; never the data."""
        return {
            "id": self.id,
            "resource": self.resource,
            "mode": self.mode,
            "state": self.state.value,
            "chainId": self.context.chain_id,
            "targetId": self.context.target_id,
            "final": self.context.is_final,
            "attempts": self.attempts,
            "retries": self.retries,
            "lastError": self.last_error,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "resumeStartedAt": self.resume_started_at,
            "finishedAt": self.finished_at,
        }
