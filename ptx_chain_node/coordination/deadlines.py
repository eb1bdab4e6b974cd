"""The periodic sweep: deadlines, start conditions, orphaned runs, pending notifications.

Everything it acts on is in the store, so it survives restarts: a collaboration whose
deadline passed while no process ran is expired (or run with its minimum of parties) by the
first sweep after start-up. The app's lifespan starts and stops it.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from ptx_chain_node.coordination.service import Coordinator

log = structlog.get_logger(__name__)


class DeadlineSweep:
    """Calls :meth:`Coordinator.sweep` every ``interval`` seconds in a background task."""

    def __init__(self, coordinator: Coordinator, interval: float) -> None:
        self.coordinator = coordinator
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="coordination-sweep")

    async def stop(self) -> None:
        """Stop the background task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.coordinator.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sweep must outlive a store hiccup
                log.warning("coordination sweep failed", error=type(exc).__name__)
            await asyncio.sleep(self.interval)
