"""An engine's side of a chain step: a thread's rows to the compute nodes, a result back.

The :class:`~.processor.MpcProcessor` registers each thread's party and confirms its upload
with the coordinator; what happens in between depends on the collaboration's engine, behind
:class:`EngineUploads` (one instance per engine name):

- ``upload``: share the thread's typed rows for the collaboration's program and send the
  shares to the compute nodes, as that engine's client protocol says; the secret ids and
  row count to confirm;
- ``result``: as the collaboration's in-process output party ``chain``, read the result of
  the run and decode it (names and values, or why it is withheld).

:class:`MpycUploads` is the MPyC engine's (pre-aggregate, Shamir-split, share ``i`` to node
``i``; ``t + 1`` result shares reconstructed); the Carbyne Stack one is in
:mod:`.carbynestack`.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from ptx_chain_node.chains.config import CHAIN_OUTPUT_PARTY
from ptx_chain_node.chains.records import ThreadRows
from ptx_chain_node.coordination.records import CollaborationRecord, Role
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.encoding import EncodedColumns
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.errors import GroupTooSmall
from ptx_chain_node.mpc.node_client import NodeClient
from ptx_chain_node.mpc.sharing import ShareVector
from ptx_chain_node.mpc.upload import prepare_upload


@dataclass(frozen=True)
class Upload:
    """What an input party confirms: its secret ids and row count."""

    secret_ids: list[str]
    rows: int


@dataclass(frozen=True)
class Computed:
    """A collaboration's decoded result: output names and values, or why it is withheld."""

    names: list[str] = field(default_factory=list)
    values: list[object] = field(default_factory=list)
    withheld: str | None = None


class EngineUploads(Protocol):
    """One engine's upload and result path for chain steps."""

    engine: str

    async def upload(
        self,
        record: CollaborationRecord,
        party_id: str,
        rows: ThreadRows,
        encoded: EncodedColumns,
    ) -> Upload:
        """Share ``rows`` of input party ``party_id`` and send the shares to the nodes.

        ``encoded`` wraps ``rows.columns`` once for every computation of the step: an
        engine that encodes through it encodes each ``(column, scale)`` once per thread.
        """
        ...

    async def result(self, record: CollaborationRecord) -> Computed:
        """The result of the collaboration's finished run, read as the chain's output party."""
        ...


def _unavailable(message: str) -> PtxError:
    return PtxError(message, 502, [Problem("nodes", message)])


class MpycUploads:
    """The MPyC engine's path: its m nodes over one injected ``httpx.AsyncClient``."""

    engine = "mpyc"

    def __init__(self, mpyc: MpycEngine, http: httpx.AsyncClient) -> None:
        self.mpyc = mpyc
        self.http = http

    def _clients(self, grant: dict[str, Any]) -> list[NodeClient]:
        ordered = sorted(grant["nodes"], key=lambda n: int(n["index"]))
        return [NodeClient(self.http, str(n["url"]), int(n["index"])) for n in ordered]

    async def upload(
        self,
        record: CollaborationRecord,
        party_id: str,
        rows: ThreadRows,
        encoded: EncodedColumns,
    ) -> Upload:
        """Pre-aggregate (from ``encoded``) and Shamir-split; share vector ``i`` to node ``i``."""
        del rows  # the columns are read through ``encoded``, shared by the computations
        cid = record.id
        plan = record.definition.compute_config  # {m, t}, as the engine validated it
        found = self.mpyc.binding(record.definition)
        prepared = prepare_upload(found, encoded, int(plan["m"]), int(plan["t"]))
        grant = self.mpyc.grant(cid, Role.INPUT, party_id)
        secret_id = str(uuid.uuid4())
        await asyncio.gather(
            *(
                client.upload(grant["token"], secret_id, cid, party_id, vector.to_json())
                for client, vector in zip(self._clients(grant), prepared.vectors, strict=True)
            )
        )
        return Upload([secret_id], prepared.rows)

    async def result(self, record: CollaborationRecord) -> Computed:
        """``t + 1`` (or more) result shares from the nodes, reconstructed and decoded."""
        found = self.mpyc.binding(record.definition)
        grant = self.mpyc.grant(record.id, Role.OUTPUT, CHAIN_OUTPUT_PARTY)
        clients = self._clients(grant)
        (result_id,) = record.result_ids or [""]
        answers = await asyncio.gather(
            *(c.result(grant["token"], result_id) for c in clients), return_exceptions=True
        )
        vectors = [ShareVector.from_json(a["results"][0]) for a in answers if isinstance(a, dict)]
        needed = vectors[0].t + 1 if vectors else len(clients) // 2 + 1
        if len(vectors) < needed:
            raise _unavailable(f"{len(vectors)} of {len(clients)} nodes gave result shares")
        try:
            result = found.bound.reconstruct(vectors)
        except GroupTooSmall as exc:
            return Computed(withheld=exc.message)
        return Computed(list(result.names), list(result.values))
