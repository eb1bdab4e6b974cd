"""The interface between the coordinator and an MPC engine (MPyC, Carbyne Stack, test).

The coordinator never sees data or shares: it hands the engine the secret ids the input
parties confirmed, asks it to run the collaboration's program under a run id of its own
choosing, polls the run, and reads the ids of the result secrets.

Engines must treat ``run`` as idempotent per ``run_id``: after a crash the coordinator may
call it again for the same run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ptx_chain_node.coordination.collaboration import Collaboration


class RunPhase(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class RunStatus:
    """Where a run is; ``error`` says why a failed run failed (no data in it)."""

    phase: RunPhase
    error: str | None = None


@dataclass(frozen=True)
class PartyInput:
    """One input party's confirmed upload."""

    party_id: str
    secret_ids: list[str] = field(default_factory=list)
    rows: int | None = None


class Engine(Protocol):
    """What the coordinator needs from an MPC engine."""

    name: str

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The compute configuration, checked; PtxError (4xx) naming the field at fault."""
        ...

    async def input_plan(self, collaboration: Collaboration) -> dict[str, Any]:
        """What an input party's client needs to upload shares (the compute config)."""
        ...

    async def register_inputs(self, collaboration: Collaboration, upload: PartyInput) -> None:
        """Check and record a confirmed upload; PtxError 422 when it does not fit."""
        ...

    async def run(
        self, run_id: str, collaboration: Collaboration, inputs: Sequence[PartyInput]
    ) -> None:
        """Start (or, for a known ``run_id``, keep) the run; returns once it is started."""
        ...

    async def status(self, run_id: str) -> RunStatus | None:
        """The run's status; None when the engine does not know the run (e.g. restarted)."""
        ...

    async def fetch_result(self, run_id: str) -> list[str]:
        """The ids of the result secrets of a finished run (never their values)."""
        ...

    async def delete(self, collaboration_id: str) -> None:
        """Forget everything held for the collaboration (inputs, runs, results)."""
        ...
