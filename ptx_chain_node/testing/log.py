"""The in-memory state of a simulated PDC and the queries tests make on it.

:class:`PDCLog` holds the chains this PDC runs (``chains``, lost by ``restart()``) and the
logs that survive a restart: ``resource_calls``, ``resumes``, ``outputs``,
``data_requests`` and ``errors``. :class:`~ptx_chain_node.testing.pdc.SimulatedPDC` is one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ptx_chain_node.testing.chainspec import ChainSpec, new_exchange_id
from ptx_chain_node.testing.records import (
    DataRequest,
    Output,
    ResourceCall,
    ResumeOutcome,
    ResumeRecord,
    StepState,
)

JsonValue = Any


@dataclass
class StepRun:
    """One run of one step on this PDC (a duplicate resume upstream makes a new run)."""

    index: int
    state: StepState = StepState.PENDING
    early_resumes: int = 0


@dataclass
class ChainRun:
    """A chain as this PDC holds it in memory."""

    chain_id: str
    spec: ChainSpec
    exchange_id: str = field(default_factory=new_exchange_id)
    steps: dict[int, StepRun] = field(default_factory=dict)

    def find_step(self, target_id: str | None) -> StepRun | None:
        """The latest run here of the resumable step whose offering is ``target_id``."""
        last = len(self.spec.nodes)  # the consumer cannot be resumed
        matches = [
            s
            for i, s in sorted(self.steps.items())
            if i < last and self.spec.steps[i].offering == target_id
        ]
        return matches[-1] if matches else None


class PDCLog:
    """Chains in memory, plus the logs tests read."""

    def __init__(self) -> None:
        self.chains: dict[str, ChainRun] = {}
        self.forgotten: set[str] = set()
        self.resource_calls: list[ResourceCall] = []
        self.resumes: list[ResumeRecord] = []
        self.outputs: list[Output] = []
        self.data_requests: list[DataRequest] = []
        self.errors: list[str] = []

    def resumes_for(self, chain_id: str, target_id: str | None = None) -> list[ResumeRecord]:
        """Resumes received for a chain (and step), in arrival order."""
        return [
            r
            for r in self.resumes
            if r.chain_id == chain_id and (target_id is None or r.target_id == target_id)
        ]

    def calls_for(self, chain_id: str, target_id: str | None = None) -> list[ResourceCall]:
        """Resource calls made for a chain (and step), in order."""
        return [
            c
            for c in self.resource_calls
            if c.chain_id == chain_id and (target_id is None or c.target_id == target_id)
        ]

    @property
    def duplicates(self) -> list[ResumeRecord]:
        """Resumes of an already-resumed step (each re-triggered the forward)."""
        return [r for r in self.resumes if r.outcome is ResumeOutcome.DUPLICATE]

    def step_state(self, chain_id: str, target_id: str) -> StepState | None:
        """State of the step ``target_id`` of ``chain_id`` on this PDC, if it runs here."""
        run = self.chains.get(chain_id)
        step_run = run.find_step(target_id) if run else None
        return step_run.state if step_run else None

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
    ) -> None:
        """Poll ``predicate`` until true; raise ``TimeoutError`` after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 (polling works whatever loop records)
                await asyncio.sleep(0.005)

    async def wait_for_output(
        self,
        chain_id: str,
        timeout: float = 10.0,
    ) -> Output:
        """What the final node of ``chain_id`` received (waits for it)."""
        await self.wait_until(lambda: any(o.chain_id == chain_id for o in self.outputs), timeout)
        return next(o for o in self.outputs if o.chain_id == chain_id)

    async def wait_for_state(
        self,
        chain_id: str,
        target_id: str,
        state: StepState,
        timeout: float = 10.0,
    ) -> None:
        """Wait until the step is in ``state`` (e.g. ``SUSPENDED`` before a manual resume)."""
        await self.wait_until(lambda: self.step_state(chain_id, target_id) == state, timeout)
