"""What a chain step computes: the processor interface the worker runs.

The MPC processor (collaborations on compute nodes) implements it; so does the plaintext
``summary`` processor used before an MPC configuration exists, and test processors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ptx_chain_node.job import Job, JobResult, JobState

#: Records an intermediate state of a job (``shared``, ``computing``) in the store.
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
