"""Test kit for the MPyC node tests: real node processes on loopback, parties, runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from gateway.local_nodes import LocalNodes
from ptx_chain_node.coordination.collaboration import (
    Collaboration,
    InputSpec,
    ProgramRef,
)
from ptx_chain_node.coordination.engine import PartyInput, RunPhase, RunStatus
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.mpc.catalogue import ProgramResult
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.node_client import NodeClient
from ptx_chain_node.mpc.registry import CatalogueRegistry
from ptx_chain_node.mpc.sharing import ShareVector

SPEC = {"columns": [{"name": "salary", "type": "integer", "min": 0, "max": 1_000_000}]}


@contextmanager
def running_nodes(count: int, data_dir: Path, **kwargs: Any) -> Iterator[LocalNodes]:
    """``count`` node processes, ready, stopped at the end."""
    nodes = LocalNodes(count, data_dir, **kwargs)
    nodes.start()
    try:
        nodes.wait_ready(30.0)
        yield nodes
    finally:
        nodes.stop()


def collaboration(
    program: str,
    parameters: dict[str, Any],
    spec: dict[str, Any] | None = None,
    *,
    cid: str = "collab-1",
) -> Collaboration:
    """A collaboration definition as the coordinator would store it (engine mpyc)."""
    input_spec = InputSpec.model_validate(spec or SPEC)
    resolved = CatalogueRegistry().resolve(
        ProgramRef(name=program, version="1.0.0", parameters=parameters), input_spec
    )
    return Collaboration(
        id=cid,
        name="test",
        program=resolved,
        input_specification=input_spec,
        input_parties=[],
        number_of_parties=3,
        min_parties=3,
        allow_partial_run=False,
        deadline=None,
        engine="mpyc",
        compute_config={},
        registration="open",
        approval="on_confirm",
        created_at=time.time(),
    )


def node_clients(http: httpx.AsyncClient, nodes: LocalNodes) -> list[NodeClient]:
    return [NodeClient(http, spec.url, i) for i, spec in enumerate(nodes.specs())]


async def upload(
    http: httpx.AsyncClient,
    engine: MpycEngine,
    collab: Collaboration,
    party_id: str,
    columns: dict[str, Sequence[object]],
    secret_id: str,
) -> PartyInput:
    """One input party: share locally, upload share i to node i, register with the engine."""
    bound = engine.binding(collab).bound
    vectors = bound.share(columns, engine.m)
    grant = engine.grant(collab.id, Role.INPUT, party_id)
    clients = [NodeClient(http, n["url"], n["index"]) for n in grant["nodes"]]
    await asyncio.gather(
        *(
            c.upload(grant["token"], secret_id, collab.id, party_id, v.to_json())
            for c, v in zip(clients, vectors, strict=True)
        )
    )
    party = PartyInput(party_id, [secret_id], len(next(iter(columns.values()))))
    await engine.register_inputs(collab, party)
    return party


async def wait_run(engine: MpycEngine, run_id: str, timeout: float = 30.0) -> RunStatus:
    """The run's status once it is no longer running (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await engine.status(run_id)
        assert status is not None
        if status.phase is not RunPhase.RUNNING:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} still running after {timeout} s")


async def reveal(
    http: httpx.AsyncClient, engine: MpycEngine, collab: Collaboration, run_id: str
) -> ProgramResult:
    """The output party's side: result shares from every node, reconstructed."""
    (result_id,) = await engine.fetch_result(run_id)
    grant = engine.grant(collab.id, Role.OUTPUT, "out")
    clients = [NodeClient(http, n["url"], n["index"]) for n in grant["nodes"]]
    docs = await asyncio.gather(*(c.result(grant["token"], result_id) for c in clients))
    vectors = [ShareVector.from_json(d["results"][0]) for d in docs]
    return engine.binding(collab).bound.reconstruct(vectors)
