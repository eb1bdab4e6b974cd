"""An input party's upload and an output party's result, on the party's own machine.

Upload (:func:`upload_file`): read the rows (CSV or JSON), check them against the
collaboration's input specification, resolve the program **with this client's own
catalogue** (the coordinator's program hash must match what it recomputes), pre-aggregate
(decomposable programs) and Shamir-split locally, upload share vector ``i`` to node ``i``
with the node token the coordinator issued, and confirm the secret id and row count to the
coordinator. No plaintext row or aggregate leaves the machine; each node sees one share.

Result (:func:`fetch_result`): the result ids from the coordinator, the result shares
from the nodes (at least ``t + 1``; more are checked for consistency), reconstructed and
decoded here.

:func:`prepare_upload` and :func:`program_of` are pure; the rest is I/O at the edges.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from ptx_chain_node.coordination.collaboration import InputSpec, ProgramRef
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.catalogue import BoundProgram
from ptx_chain_node.mpc.coordinator_client import CoordinatorClient
from ptx_chain_node.mpc.encoding import EncodedColumns
from ptx_chain_node.mpc.node_client import NodeClient
from ptx_chain_node.mpc.registry import Binding, CatalogueRegistry, binding
from ptx_chain_node.mpc.rows import Columns, read_file
from ptx_chain_node.mpc.sharing import ShareVector


@dataclass(frozen=True)
class PreparedUpload:
    """One share vector per node, the row count, and the program they were made for."""

    bound: BoundProgram
    vectors: list[ShareVector]
    rows: int


def program_of(collaboration: dict[str, Any]) -> tuple[InputSpec, Binding, str]:
    """The input spec, the program bound by this client's catalogue, and its coordinator hash.

    Raises 409 when the coordinator's program hash is not the one this client computes.
    """
    spec = InputSpec.model_validate(collaboration["input_specification"])
    program = collaboration["program"]
    ref = ProgramRef(
        name=program["name"], version=program["version"], parameters=program["parameters"]
    )
    resolved = CatalogueRegistry().resolve(ref, spec)
    if resolved.sha256 != program.get("sha256"):
        message = "the coordinator's program hash differs from this client's catalogue"
        raise PtxError(message, 409, [Problem("program.sha256", message)])
    return spec, binding(ref.name, ref.version, ref.parameters), resolved.sha256


def prepare_upload(
    found: Binding, columns: Mapping[str, Sequence[object]], m: int, t: int
) -> PreparedUpload:
    """Map input columns to program columns, pre-aggregate and split for ``m`` nodes.

    Given an :class:`~.encoding.EncodedColumns` (one party's rows for several programs),
    the program reads it renamed to its own columns over the same cache, so each
    ``(column, scale)`` is encoded once for all of them.
    """
    encoded = columns if isinstance(columns, EncodedColumns) else EncodedColumns(columns)
    data = encoded.renamed(found.columns)
    rows = len(next(iter(columns.values()))) if columns else 0
    return PreparedUpload(found.bound, found.bound.share(data, m, t), rows)


def _nodes(grant: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    urls = [str(n["url"]) for n in sorted(grant["nodes"], key=lambda n: int(n["index"]))]
    if len(urls) != int(plan["m"]):
        message = f"the plan names {plan['m']} nodes, the grant {len(urls)}"
        raise PtxError(message, 502, [Problem("nodes", message)])
    return urls


async def upload_columns(
    coordinator: CoordinatorClient,
    http: httpx.AsyncClient,
    collaboration_id: str,
    party_id: str,
    columns: Columns | None = None,
    *,
    path: Path | None = None,
    approve: bool = False,
    secret_id: str | None = None,
) -> dict[str, Any]:
    """Validate, share, upload and confirm one party's rows (``columns`` or a file).

    ``secret_id`` is the id to upload under (default: a fresh one), e.g. one the party
    already named in a chain thread by reference.
    """
    collaboration = await coordinator.collaboration(collaboration_id)
    spec, found, sha256 = program_of(collaboration)
    if columns is None:
        if path is None:
            raise ValueError("give columns or a path")
        columns = read_file(spec, path)
    plan = await coordinator.compute_config(collaboration_id)
    if plan.get("engine") != "mpyc":
        message = f"collaboration uses engine {plan.get('engine')!r}, not mpyc"
        raise PtxError(message, 409, [Problem("engine", message)])
    if plan["program"]["hash"] != found.bound.hash:
        message = "the nodes' program hash differs from this client's catalogue"
        raise PtxError(message, 409, [Problem("program.hash", message)])
    prepared = prepare_upload(found, columns, int(plan["m"]), int(plan["t"]))
    grant = await coordinator.node_token(collaboration_id, Role.INPUT, party_id)
    urls = _nodes(grant, plan)
    secret_id = secret_id or str(uuid.uuid4())
    nodes = [NodeClient(http, url, i) for i, url in enumerate(urls)]
    await asyncio.gather(
        *(
            node.upload(grant["token"], secret_id, collaboration_id, party_id, vector.to_json())
            for node, vector in zip(nodes, prepared.vectors, strict=True)
        )
    )
    confirmation = await coordinator.confirm_upload(
        collaboration_id, party_id, [secret_id], prepared.rows, sha256 if approve else None
    )
    return {
        "collaboration_id": collaboration_id,
        "party_id": party_id,
        "secret_ids": [secret_id],
        "rows": prepared.rows,
        "nodes": len(urls),
        "program_sha256": sha256,
        "approved": approve,
        "state": confirmation.get("state"),
    }


async def upload_file(
    coordinator_url: str,
    collaboration_id: str,
    party_id: str,
    token: str,
    path: Path,
    *,
    approve: bool = False,
    timeout: float = 60.0,
    secret_id: str | None = None,
) -> dict[str, Any]:
    """:func:`upload_columns` for a CSV or JSON file, with its own HTTP client."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        coordinator = CoordinatorClient(http, coordinator_url, token, timeout)
        return await upload_columns(
            coordinator,
            http,
            collaboration_id,
            party_id,
            path=path,
            approve=approve,
            secret_id=secret_id,
        )


def _json_value(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


async def result_of(
    coordinator: CoordinatorClient,
    http: httpx.AsyncClient,
    collaboration_id: str,
    party_id: str,
) -> dict[str, Any]:
    """Fetch result shares from the nodes and reconstruct the result (output party)."""
    collaboration = await coordinator.collaboration(collaboration_id)
    _, found, sha256 = program_of(collaboration)
    results = await coordinator.results(collaboration_id)
    grant = await coordinator.node_token(collaboration_id, Role.OUTPUT, party_id)
    urls = [str(n["url"]) for n in sorted(grant["nodes"], key=lambda n: int(n["index"]))]
    nodes = [NodeClient(http, url, i) for i, url in enumerate(urls)]
    decoded: dict[str, Any] = {}
    for result_id in results["result_ids"]:
        answers = await asyncio.gather(
            *(node.result(grant["token"], result_id) for node in nodes), return_exceptions=True
        )
        vectors = [ShareVector.from_json(a["results"][0]) for a in answers if isinstance(a, dict)]
        needed = vectors[0].t + 1 if vectors else len(nodes) // 2 + 1
        if len(vectors) < needed:
            reasons = [str(a) for a in answers if isinstance(a, BaseException)]
            message = f"{len(vectors)} of {len(nodes)} nodes gave result shares, {needed} needed"
            raise PtxError(message, 502, [Problem("nodes", r) for r in reasons])
        result = found.bound.reconstruct(vectors)
        decoded = {name: _json_value(v) for name, v in result.as_dict().items()}
    return {
        "collaboration_id": collaboration_id,
        "program": {"name": found.bound.name, "version": found.bound.version, "sha256": sha256},
        "result_ids": results["result_ids"],
        "result": decoded,
    }


async def fetch_result(
    coordinator_url: str,
    collaboration_id: str,
    party_id: str,
    token: str,
    *,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """:func:`result_of` with its own HTTP client."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        coordinator = CoordinatorClient(http, coordinator_url, token, timeout)
        return await result_of(coordinator, http, collaboration_id, party_id)
