"""The compute node service: real ``ptx-chain-node node`` processes on 127.0.0.1."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from node_cluster import collaboration, node_clients, reveal, running_nodes, upload, wait_run

from gateway.local_nodes import LocalNodes
from ptx_chain_node.coordination.engine import PartyInput
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.errors import PtxError
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.node_tokens import NodeTokens, Scope

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with running_nodes(3, tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


def _vector_json(engine: MpycEngine, cid: str, values: list[int]) -> list[dict[str, object]]:
    collab = collaboration("sum", {"min_group_size": 1, "columns": {"value": "salary"}}, cid=cid)
    return [v.to_json() for v in engine.binding(collab).bound.share({"value": values}, 3)]


async def test_health_names_index_and_party_count(nodes: LocalNodes) -> None:
    async with httpx.AsyncClient() as http:
        for i, spec in enumerate(nodes.specs()):
            assert (await http.get(spec.url + "/health")).json() == {
                "status": "ok",
                "index": i,
                "m": 3,
            }


async def test_bad_upload_tokens_are_refused_and_nothing_is_stored(nodes: LocalNodes) -> None:
    async with httpx.AsyncClient() as http:
        engine = MpycEngine(nodes.specs(), http, nodes.token_secret)
        vectors = _vector_json(engine, "c-auth", [1, 2, 3])
        body = {"collaboration_id": "c-auth", "party_id": "alice", "shares": vectors[0]}
        url = nodes.specs()[0].url + "/v1/shares/s-auth"
        forged = NodeTokens("x" * 40).issue(Scope.UPLOAD, "c-auth", "alice")
        other_collab = engine.tokens.issue(Scope.UPLOAD, "c-other", "alice")
        result_token = engine.tokens.issue(Scope.RESULT, "c-auth", "alice")
        expired = engine.tokens.issue(Scope.UPLOAD, "c-auth", "alice", ttl=-10)
        for token in (None, "garbage", forged, other_collab, result_token, expired):
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = await http.put(url, json=body, headers=headers)
            assert response.status_code == 401, (token, response.text)
            assert response.json()["code"] == 401
        # another party's token: authenticated, but not for this party
        bob = engine.tokens.issue(Scope.UPLOAD, "c-auth", "bob")
        response = await http.put(url, json=body, headers={"authorization": f"Bearer {bob}"})
        assert response.status_code == 403
        # nothing was stored at the node
        coordinator = engine.tokens.issue(Scope.COORDINATOR)
        assert await node_clients(http, nodes)[0].share_info(coordinator, "s-auth") is None
        # and the share facts themselves need the coordinator's token
        upload_token = engine.tokens.issue(Scope.UPLOAD, "c-auth", "alice")
        with pytest.raises(PtxError) as caught:
            await node_clients(http, nodes)[0].share_info(upload_token, "s-auth")
        assert caught.value.status == 401


async def test_upload_is_idempotent_and_checked_against_the_node(nodes: LocalNodes) -> None:
    async with httpx.AsyncClient() as http:
        engine = MpycEngine(nodes.specs(), http, nodes.token_secret)
        clients = node_clients(http, nodes)
        token = engine.tokens.issue(Scope.UPLOAD, "c-idem", "alice")
        vectors = _vector_json(engine, "c-idem", [5, 6])
        first = await http.put(
            clients[1].url + "/v1/shares/s-idem",
            json={"collaboration_id": "c-idem", "party_id": "alice", "shares": vectors[1]},
            headers={"authorization": f"Bearer {token}"},
        )
        assert first.status_code == 201
        again = await clients[1].upload(token, "s-idem", "c-idem", "alice", vectors[1])
        assert again["count"] == 2  # [n, sum]: pre-aggregated
        other = _vector_json(engine, "c-idem", [5, 6])[1]  # a fresh split: other shares
        with pytest.raises(PtxError) as caught:
            await clients[1].upload(token, "s-idem", "c-idem", "alice", other)
        assert caught.value.status == 409
        with pytest.raises(PtxError) as caught:  # node 0's share sent to node 1
            await clients[1].upload(token, "s-idem-0", "c-idem", "alice", vectors[0])
        assert caught.value.status == 422
        assert "shares.party" in {p.field for p in caught.value.problems}


async def test_run_reveals_only_to_result_tokens_and_deletes_the_inputs(
    nodes: LocalNodes,
) -> None:
    rng = random.Random(7)
    collab = collaboration(
        "sum", {"min_group_size": 1, "columns": {"value": "salary"}}, cid="c-run"
    )
    async with httpx.AsyncClient() as http:
        engine = MpycEngine(nodes.specs(), http, nodes.token_secret)
        data = [[rng.randrange(0, 10**6) for _ in range(rng.randrange(1, 40))] for _ in range(3)]
        inputs = [
            await upload(http, engine, collab, f"p{j}", {"value": rows}, f"s-run-{j}")
            for j, rows in enumerate(data)
        ]
        await engine.run("run-1", collab, inputs)
        status = await wait_run(engine, "run-1")
        assert status.error is None
        result = await reveal(http, engine, collab, "run-1")
        assert result.as_dict() == {"sum": sum(map(sum, data))}

        clients = node_clients(http, nodes)
        coordinator = engine.tokens.issue(Scope.COORDINATOR)
        for client in clients:  # inputs are gone after a successful run
            for j in range(3):
                assert await client.share_info(coordinator, f"s-run-{j}") is None
        # result shares: an input party's upload token is refused, another
        # collaboration's result token finds nothing
        for token, status_code in (
            (engine.tokens.issue(Scope.UPLOAD, "c-run", "p0"), 401),
            (engine.tokens.issue(Scope.RESULT, "c-other", "out"), 404),
        ):
            with pytest.raises(PtxError) as caught:
                await clients[0].result(token, "run-1")
            assert caught.value.status == status_code
        # a repeated run request for the same run id changes nothing
        await engine.run("run-1", collab, inputs)
        assert (await engine.status("run-1")) == status
        # deleting the collaboration forgets the result shares at every node
        await engine.delete("c-run")
        for client in clients:
            assert await client.run(coordinator, "run-1") is None


async def test_run_with_missing_inputs_is_refused_by_every_node(nodes: LocalNodes) -> None:
    collab = collaboration(
        "sum", {"min_group_size": 1, "columns": {"value": "salary"}}, cid="c-miss"
    )
    async with httpx.AsyncClient() as http:
        engine = MpycEngine(nodes.specs(), http, nodes.token_secret)
        party = await upload(http, engine, collab, "p0", {"value": [1, 2]}, "s-miss-0")
        await engine.run("run-miss", collab, [party, PartyInput("p1", ["s-never"], 1)])
        status = await wait_run(engine, "run-miss", 10.0)
        assert status.phase == "failed"
        assert status.error is not None
        assert "cannot run these inputs" in status.error
        # the stored input is still there for a corrected run
        coordinator = engine.tokens.issue(Scope.COORDINATOR)
        assert await node_clients(http, nodes)[2].share_info(coordinator, "s-miss-0") is not None
        grant = engine.grant("c-miss", Role.OUTPUT, "out")
        assert grant["scope"] == "result"


def test_node_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "node", "--index", "0", "--parties",
         "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--http-port", "1", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "token secret is required" in result.stderr
