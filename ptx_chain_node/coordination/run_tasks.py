"""Background runs of an in-process engine, by run id (the bookkeeping engines share)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ptx_chain_node.coordination.engine import RunPhase, RunStatus


def plain_reason(exc: BaseException) -> str:
    """The default failure reason: the error's message, or its type."""
    return str(exc) or type(exc).__name__


@dataclass
class _Run:
    collaboration_id: str
    task: asyncio.Task[list[str]]


class RunTasks:
    """Each run is one task computing its result secret ids; ``run`` is idempotent."""

    def __init__(self, reason: Callable[[BaseException], str] = plain_reason) -> None:
        self.reason = reason
        self._runs: dict[str, _Run] = {}

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def start(
        self,
        run_id: str,
        collaboration_id: str,
        work: Coroutine[Any, Any, list[str]],
        on_done: Callable[[asyncio.Task[list[str]]], None] | None = None,
    ) -> bool:
        """Start ``work`` for ``run_id``; False (and ``work`` closed) for a known run."""
        if run_id in self._runs:
            work.close()
            return False
        task = asyncio.create_task(work)
        if on_done is not None:
            task.add_done_callback(on_done)
        self._runs[run_id] = _Run(collaboration_id, task)
        return True

    def status(self, run_id: str) -> RunStatus | None:
        """Running, done, or failed with its reason; None for a run never started here."""
        run = self._runs.get(run_id)
        if run is None:
            return None
        if not run.task.done():
            return RunStatus(RunPhase.RUNNING)
        if run.task.cancelled():
            return RunStatus(RunPhase.FAILED, "run cancelled")
        exc = run.task.exception()
        if exc is not None:
            return RunStatus(RunPhase.FAILED, self.reason(exc))
        return RunStatus(RunPhase.DONE)

    def result(self, run_id: str) -> list[str]:
        """The result secret ids of a finished run."""
        return self._runs[run_id].task.result()

    def forget(self, collaboration_id: str) -> None:
        """Cancel and drop every run of a collaboration."""
        for run_id, run in list(self._runs.items()):
            if run.collaboration_id == collaboration_id:
                run.task.cancel()
                del self._runs[run_id]

    async def cancel_all(self) -> None:
        """Cancel the runs still computing and wait for them to stop."""
        tasks = [run.task for run in self._runs.values() if not run.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
