"""A restarted MPyC engine adopts the run its predecessor started, from what the nodes say.

After a coordinator restart, the run supervisor asks the engine about the run it had
recorded. A run still going on, or already done, at every node is followed under its own
id (a done run's inputs are deleted at the nodes, so starting it again would fail); a run
a node does not know, or that failed, is unknown (None): the supervisor starts it again.
Real node processes; results checked against plaintext on random data.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from node_cluster import collaboration, node_clients, reveal, running_nodes, upload, wait_run

from gateway.local_nodes import LocalNodes
from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.engine import PartyInput, RunPhase
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.node_tokens import Scope

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with running_nodes(3, tmp_path_factory.mktemp("nodes"), run_timeout=30) as cluster:
        yield cluster


async def node_states(http: httpx.AsyncClient, nodes: LocalNodes, run_id: str) -> list[Any]:
    """The run's state at each node (None where the node does not know it)."""
    token = MpycEngine(nodes.specs(), http, nodes.token_secret).tokens.issue(Scope.COORDINATOR)
    views = await asyncio.gather(*(c.run(token, run_id) for c in node_clients(http, nodes)))
    return [None if v is None else v["state"] for v in views]


async def until_nodes(
    http: httpx.AsyncClient, nodes: LocalNodes, run_id: str, states: set[Any]
) -> None:
    deadline = time.monotonic() + 40.0
    while not set(await node_states(http, nodes, run_id)) <= states:
        assert time.monotonic() < deadline, await node_states(http, nodes, run_id)
        await asyncio.sleep(0.02)


async def left_behind(
    http: httpx.AsyncClient, nodes: LocalNodes, program: str, cid: str, rows: int
) -> tuple[Collaboration, list[int], list[PartyInput]]:
    """A run ``run-<cid>`` started at every node by an engine that then went away."""
    rng = random.Random()
    collab = collaboration(program, {"min_group_size": 1, "columns": {"value": "salary"}}, cid=cid)
    before = MpycEngine(nodes.specs(), http, nodes.token_secret)
    inputs, values = [], []
    for j in range(3):
        column = [rng.randrange(0, 10**6) for _ in range(rows)]
        values += column
        inputs.append(await upload(http, before, collab, f"p{j}", {"value": column}, f"s{cid}{j}"))
    await before.run(f"run-{cid}", collab, inputs)
    await until_nodes(http, nodes, f"run-{cid}", {"running", "done"})
    await before.close()  # the coordinator process went away; the nodes go on
    return collab, values, inputs


async def test_a_run_still_going_on_at_the_nodes_is_followed_to_its_result(
    nodes: LocalNodes,
) -> None:
    async with httpx.AsyncClient() as http:
        collab, values, _ = await left_behind(http, nodes, "median", "adopt-running", 30)
        after = MpycEngine(nodes.specs(), http, nodes.token_secret)
        first = await after.status("run-adopt-running")
        assert first is not None and first.phase is RunPhase.RUNNING
        status = await wait_run(after, "run-adopt-running", 40.0)
        assert status.phase is RunPhase.DONE, status
        (value,) = (await reveal(http, after, collab, "run-adopt-running")).values
        await after.close()
    assert value == float(np.median(values))


async def test_a_run_done_at_the_nodes_gives_its_result_without_running_again(
    nodes: LocalNodes,
) -> None:
    async with httpx.AsyncClient() as http:
        collab, values, inputs = await left_behind(http, nodes, "sum", "adopt-done", 20)
        await until_nodes(http, nodes, "run-adopt-done", {"done"})
        after = MpycEngine(nodes.specs(), http, nodes.token_secret)
        status = await after.status("run-adopt-done")
        assert status is not None and status.phase is RunPhase.DONE
        assert await after.fetch_result("run-adopt-done") == ["run-adopt-done"]
        (value,) = (await reveal(http, after, collab, "run-adopt-done")).values
        # Its inputs are gone at the nodes: starting it again could not work.
        again = MpycEngine(nodes.specs(), http, nodes.token_secret)
        await again.run("run-adopt-done-2", collab, inputs)
        refused = await wait_run(again, "run-adopt-done-2")
        assert refused.phase is RunPhase.FAILED and "cannot run these inputs" in str(refused.error)
        await after.close()
        await again.close()
    assert value == sum(values)


async def test_a_run_unknown_or_failed_at_a_node_is_unknown(nodes: LocalNodes) -> None:
    async with httpx.AsyncClient() as http:
        after = MpycEngine(nodes.specs(), http, nodes.token_secret)
        assert await after.status("run-never-started") is None
        await left_behind(http, nodes, "median", "adopt-failed", 30)
        token = after.tokens.issue(Scope.COORDINATOR)
        clients = node_clients(http, nodes)
        await asyncio.gather(*(c.cancel(token, "run-adopt-failed") for c in clients))
        await until_nodes(http, nodes, "run-adopt-failed", {"failed"})
        assert await after.status("run-adopt-failed") is None  # to be started again
        await after.close()
