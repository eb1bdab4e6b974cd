"""What a chain step computes: the processor interface the worker runs.

The MPC processor (collaborations on compute nodes) implements it; so does the plaintext
``summary`` processor used before an MPC configuration exists, and test processors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.job import Job, JobResult, JobState
from ptx_chain_node.payload import ChainPayload

#: Records an intermediate state of a job (``shared``, ``computing``) in the store;
#: ``shared`` also drops the stored payload (its shares are uploaded).
Progress = Callable[[JobState], Awaitable[None]]


class ProcessingError(Exception):
    """Processing failed; ``reason`` is stored as the job's failure reason (no data in it)."""

    def __init__(self, reason: str, *, hold: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hold = hold


class Processor(Protocol):
    """Turns a job's payload into the result that resumes the chain."""

    async def process(self, job: Job, progress: Progress) -> JobResult:
        """Compute the result of ``job`` (its ``payload`` is loaded)."""
        ...


class Validator(Protocol):
    """The optional pre-ACK hook of a processor: refuse data it could not process.

    The resource endpoint calls ``validate`` after parsing and before storing; a
    :class:`~ptx_chain_node.errors.PtxError` (4xx) refuses the request and nothing is
    stored. Processors without the method cost the ACK path nothing.
    """

    async def validate(self, context: ChainContext, payload: ChainPayload) -> None:
        """Raise PtxError when ``payload`` cannot be processed for ``context``."""
        ...


def validator_of(processor: object) -> Validator | None:
    """The processor's validation hook, or None when it has none."""
    if callable(getattr(processor, "validate", None)):
        return processor  # type: ignore[return-value]
    return None
