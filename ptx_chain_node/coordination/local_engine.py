"""An in-process engine for tests, demos and docs: real additive sharing, one process.

Values are split into additive shares modulo a prime across ``nodes`` simulated compute
nodes; ``sum`` is computed share-wise, ``mean`` and ``count`` on the reconstructed sums.
Every node lives in this process, so there is **no confidentiality**: it exists to exercise
the coordinator end to end, never for real data.

A client "uploads" with :meth:`LocalTestEngine.share` (one secret per column, one value per
row) and confirms the returned secret ids with the coordinator. :meth:`open` reconstructs a
secret; no route of the service calls it.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.engine import PartyInput, RunStatus
from ptx_chain_node.coordination.run_tasks import RunTasks
from ptx_chain_node.errors import Problem, PtxError

PRIME = 2**61 - 1


@dataclass
class _Secret:
    shares: list[list[int]]  # shares[node][row]
    owner: str | None = None  # collaboration the secret was confirmed for
    rows: int = 0


@dataclass
class LocalTestEngine:
    """The in-process engine (``name = "local"``)."""

    nodes: int = 3
    delay: float = 0.0
    fail_with: str | None = None  # make every run fail with this error (tests)
    name: str = "local"
    runs_started: int = 0
    _secrets: dict[str, _Secret] = field(default_factory=dict)
    _runs: RunTasks = field(default_factory=RunTasks)

    # -- the client side ------------------------------------------------------------------

    def share(self, values: Sequence[int]) -> str:
        """Secret-share a column of integers; returns its secret id."""
        shares = [[secrets.randbelow(PRIME) for _ in values] for _ in range(self.nodes - 1)]
        last = [(value - sum(s[row] for s in shares)) % PRIME for row, value in enumerate(values)]
        secret_id = str(uuid.uuid4())
        self._secrets[secret_id] = _Secret([*shares, last], rows=len(values))
        return secret_id

    def open(self, secret_id: str) -> list[int]:
        """Reconstruct a secret (signed values in (-p/2, p/2])."""
        secret = self._secrets[secret_id]
        return [_signed(sum(column) % PRIME) for column in zip(*secret.shares, strict=True)]

    def knows(self, secret_id: str) -> bool:
        return secret_id in self._secrets

    # -- the Engine protocol --------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(config) - {"nodes"})
        if unknown:
            problems = [Problem(f"compute_config.{k}", "unknown key") for k in unknown]
            raise PtxError("invalid compute config", 422, problems)
        nodes = config.get("nodes", self.nodes)
        if nodes != self.nodes:
            message = f"this engine runs {self.nodes} nodes"
            raise PtxError(message, 422, [Problem("compute_config.nodes", message)])
        return {"nodes": self.nodes}

    async def input_plan(self, collaboration: Collaboration) -> dict[str, Any]:
        return {"engine": self.name, "prime": PRIME, "nodes": self.nodes}

    async def register_inputs(self, collaboration: Collaboration, upload: PartyInput) -> None:
        columns = collaboration.input_specification.columns
        problems: list[Problem] = []
        if len(upload.secret_ids) != len(columns):
            problems.append(
                Problem("secret_ids", f"expected one secret per column ({len(columns)})")
            )
        for index, secret_id in enumerate(upload.secret_ids):
            secret = self._secrets.get(secret_id)
            if secret is None:
                problems.append(Problem(f"secret_ids.{index}", "unknown secret"))
            elif secret.owner not in (None, collaboration.id):
                problems.append(Problem(f"secret_ids.{index}", "secret belongs to another run"))
            elif upload.rows is not None and secret.rows != upload.rows:
                problems.append(Problem(f"secret_ids.{index}", f"holds {secret.rows} rows"))
        if problems:
            raise PtxError("upload does not match the stored secrets", 422, problems)
        for secret_id in upload.secret_ids:
            self._secrets[secret_id].owner = collaboration.id

    async def run(
        self, run_id: str, collaboration: Collaboration, inputs: Sequence[PartyInput]
    ) -> None:
        if self._runs.start(run_id, collaboration.id, self._compute(collaboration, list(inputs))):
            self.runs_started += 1

    async def status(self, run_id: str) -> RunStatus | None:
        return self._runs.status(run_id)

    async def fetch_result(self, run_id: str) -> list[str]:
        return self._runs.result(run_id)

    async def delete(self, collaboration_id: str) -> None:
        self._runs.forget(collaboration_id)
        for secret_id, secret in list(self._secrets.items()):
            if secret.owner == collaboration_id:
                del self._secrets[secret_id]

    async def close(self) -> None:
        """Cancel runs still computing."""
        await self._runs.cancel_all()

    # -- computing ------------------------------------------------------------------------

    async def _compute(self, collaboration: Collaboration, inputs: list[PartyInput]) -> list[str]:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)
        program = collaboration.program
        columns = [c.name for c in collaboration.input_specification.columns]
        rows = sum(self._secrets[i.secret_ids[0]].rows for i in inputs if i.secret_ids)
        if program.name == "count":
            return [self.share([rows])]
        selected = program.parameters.get("columns") or columns
        results: list[str] = []
        for name in selected:
            index = columns.index(name)
            # Share-wise sum: each node adds its own shares; nobody sees a value.
            node_sums = [
                sum(sum(self._secrets[i.secret_ids[index]].shares[node]) for i in inputs) % PRIME
                for node in range(self.nodes)
            ]
            total_id = str(uuid.uuid4())
            self._secrets[total_id] = _Secret([[s] for s in node_sums], collaboration.id, 1)
            if program.name == "mean":
                total = self.open(total_id)[0]
                del self._secrets[total_id]
                total_id = self.share([round(total / rows) if rows else 0])
            self._secrets[total_id].owner = collaboration.id
            results.append(total_id)
        return results


def _signed(value: int) -> int:
    return value - PRIME if value > PRIME // 2 else value
