"""The MPyC engine: the coordinator runs catalogued programs on real node processes."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from node_cluster import SPEC, collaboration, node_clients, reveal, running_nodes, upload, wait_run

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.mpc.coordinator_client import CoordinatorClient
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.node_tokens import Scope
from ptx_chain_node.mpc.programs.moments import REAL
from ptx_chain_node.mpc.upload import result_of, upload_columns

pytestmark = pytest.mark.slow

GW = "http://gateway.test"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with running_nodes(3, tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


@pytest.fixture
async def gateway(nodes: LocalNodes, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway app (coordinator + MpycEngine on the nodes), called in process."""
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'gw.db'}",
        mpyc={"nodes": [s.model_dump() for s in nodes.specs()], "token_secret": nodes.token_secret},
        coordination={"run_poll_interval": 0.1, "sweep_interval": 1.0},
        log_json=True,
    )
    app = create_app(settings, configure_logging=False)
    runtime = app.state.runtime
    await runtime.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=GW) as http:
            yield http
    finally:
        await runtime.stop()


async def _create(gw: httpx.AsyncClient, program: str, parameters: dict[str, Any]) -> Any:
    body = {
        "name": f"{program} of salaries",
        "program": {"name": program, "version": "1.0.0", "parameters": parameters},
        "input_specification": SPEC,
        "number_of_parties": 3,
        "output_parties": [{"id": "out", "endpoint": "http://127.0.0.1:9/notify"}],
        "engine": "mpyc",
        "approval": "on_confirm",
    }
    response = await gw.post("/v1/collaborations", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _wait_state(gw: httpx.AsyncClient, cid: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = (await gw.get(f"/v1/collaborations/{cid}/status")).json()
        if status["state"] in ("done", "failed", "expired"):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"collaboration {cid} did not finish in {timeout} s")


CASES = {
    "sum": ({"min_group_size": 3}, lambda rows: {"sum": sum(rows)}),
    "mean": ({"min_group_size": 3}, None),
    "histogram": ({"min_group_size": 3, "edges": [0, 1000, 250_000, 500_000, 1_000_000]}, None),
}


@pytest.mark.parametrize("program", sorted(CASES))
async def test_coordinator_runs_a_program_on_three_parties(
    gateway: httpx.AsyncClient, nodes: LocalNodes, program: str
) -> None:
    rng = random.Random(program)
    parameters, _ = CASES[program]
    created = await _create(gateway, program, {**parameters, "columns": {"value": "salary"}})
    cid, out_token = created["id"], created["output_parties"][0]["token"]
    data = [[rng.randrange(0, 1_000_001) for _ in range(rng.randrange(2, 60))] for _ in range(3)]
    async with httpx.AsyncClient() as node_http:
        for j, rows in enumerate(data):
            registered = await gateway.post(f"/v1/collaborations/{cid}/input-parties/p{j}")
            assert registered.status_code == 201
            plan = registered.json()["compute_config"]
            assert (plan["engine"], plan["m"], plan["t"]) == ("mpyc", 3, 1)
            party = CoordinatorClient(gateway, GW, registered.json()["token"])
            receipt = await upload_columns(party, node_http, cid, f"p{j}", {"salary": rows})
            assert receipt["rows"] == len(rows)
        status = await _wait_state(gateway, cid)
        assert status["state"] == "done", status
        output = CoordinatorClient(gateway, GW, out_token)
        got = (await result_of(output, node_http, cid, "out"))["result"]
    everything = [v for rows in data for v in rows]
    if program == "sum":
        assert got == {"sum": sum(everything)}
    elif program == "mean":
        (value,) = got.values()
        exact = Fraction(sum(everything), len(everything))
        assert REAL.admits(value, float(exact))
    else:
        edges = [float(e) for e in parameters["edges"]]
        expected, _ = np.histogram(everything, bins=edges)
        assert list(got.values()) == expected.tolist()


async def test_results_need_the_output_party_token(
    gateway: httpx.AsyncClient, nodes: LocalNodes
) -> None:
    created = await _create(gateway, "sum", {"min_group_size": 1, "columns": {"value": "salary"}})
    cid = created["id"]
    registered = (await gateway.post(f"/v1/collaborations/{cid}/input-parties/p0")).json()
    url = f"/v1/collaborations/{cid}/output-parties/out/node-token"
    for headers, code in (({}, 401), ({"authorization": f"Bearer {registered['token']}"}, 403)):
        assert (await gateway.get(url, headers=headers)).status_code == code
    own = {"authorization": f"Bearer {created['output_parties'][0]['token']}"}
    grant = (await gateway.get(url, headers=own)).json()
    assert grant["scope"] == "result"
    assert [n["url"] for n in grant["nodes"]] == [s.url for s in nodes.specs()]


async def test_node_down_fails_the_run_clearly_then_a_retry_succeeds(nodes: LocalNodes) -> None:
    rng = random.Random(11)
    collab = collaboration(
        "sum", {"min_group_size": 1, "columns": {"value": "salary"}}, cid="c-down"
    )
    async with httpx.AsyncClient() as http:
        engine = MpycEngine(nodes.specs(), http, nodes.token_secret, unreachable_grace=1.0)
        data = [[rng.randrange(0, 1000) for _ in range(20)] for _ in range(3)]
        inputs = [
            await upload(http, engine, collab, f"p{j}", {"value": rows}, f"s-down-{j}")
            for j, rows in enumerate(data)
        ]
        nodes.kill_node(2)
        try:
            started = time.monotonic()
            await engine.run("run-down", collab, inputs)
            status = await wait_run(engine, "run-down", 15.0)
            assert status.phase == "failed"
            assert status.error is not None
            assert "node 2" in status.error
            assert "unreachable" in status.error
            assert time.monotonic() - started < 10.0
        finally:
            nodes.restart_node(2)
            nodes.wait_ready(30.0)
        # the shares survived at every node (node 2 restarted from its SQLite file)
        await engine.run("run-retry", collab, inputs)
        status = await wait_run(engine, "run-retry")
        assert status.error is None
        result = await reveal(http, engine, collab, "run-retry")
        assert result.as_dict() == {"sum": sum(map(sum, data))}


async def test_node_killed_mid_run_fails_the_run_clearly(nodes: LocalNodes) -> None:
    rng = random.Random(13)
    collab = collaboration(
        "median", {"min_group_size": 1, "columns": {"value": "salary"}}, cid="c-kill"
    )
    async with httpx.AsyncClient() as http:
        engine = MpycEngine(nodes.specs(), http, nodes.token_secret, unreachable_grace=1.0)
        inputs = [
            await upload(
                http,
                engine,
                collab,
                f"p{j}",
                {"value": [rng.randrange(0, 10**6) for _ in range(150)]},
                f"s-kill-{j}",
            )
            for j in range(3)
        ]
        clients = node_clients(http, nodes)
        coordinator = engine.tokens.issue(Scope.COORDINATOR)
        await engine.run("run-kill", collab, inputs)
        deadline = time.monotonic() + 10.0
        while await clients[2].run(coordinator, "run-kill") is None:  # started at node 2
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # the party processes are connected and sorting
        nodes.kill_node(2)
        started = time.monotonic()
        try:
            status = await wait_run(engine, "run-kill", 20.0)
            assert status.phase == "failed"
            assert status.error is not None
            assert "party 2" in status.error or "node 2" in status.error, status.error
            assert time.monotonic() - started < 10.0
            for client in clients[:2]:  # the surviving nodes ended the run too
                view = await client.run(coordinator, "run-kill")
                assert view is not None
                assert view["state"] == "failed"
        finally:
            nodes.restart_node(2)
            nodes.wait_ready(30.0)


async def test_five_nodes_compute_a_weighted_mean(tmp_path: Path) -> None:
    rng = random.Random(5)
    spec = {
        "columns": [
            {"name": "price", "type": "fixed", "scale": 2},
            {"name": "qty", "type": "integer", "min": 0},
        ]
    }
    collab = collaboration(
        "weighted_mean",
        {"min_group_size": 1, "scale": 2, "columns": {"value": "price", "weight": "qty"}},
        spec,
        cid="c-five",
    )
    data = [
        (
            [Decimal(rng.randrange(-(10**6), 10**6)) / 100 for _ in range(30)],
            [rng.randrange(0, 50) + 1 for _ in range(30)],
        )
        for _ in range(3)
    ]
    with running_nodes(5, tmp_path / "five") as five:
        async with httpx.AsyncClient() as http:
            engine = MpycEngine(five.specs(), http, five.token_secret)
            assert engine.validate_config({}) == {"m": 5, "t": 2}
            inputs = [
                await upload(http, engine, collab, f"p{j}", {"value": v, "weight": w}, f"s5-{j}")
                for j, (v, w) in enumerate(data)
            ]
            await engine.run("run-five", collab, inputs)
            status = await wait_run(engine, "run-five")
            assert status.error is None
            (value,) = (await reveal(http, engine, collab, "run-five")).values
    weights = sum((w for _, ws in data for w in ws), 0)
    total = sum(
        (Fraction(x) * w for xs, ws in data for x, w in zip(xs, ws, strict=True)), Fraction()
    )
    assert REAL.admits(float(value), float(total / weights))


def _certificates(directory: Path, count: int) -> None:
    """A test CA and one certificate per party, as MPyC's ``--ssl`` reads them."""
    config = directory / ".config"
    config.mkdir(parents=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=config, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "mpyc_ca.key",
            "-out", "mpyc_ca.crt", "-days", "2", "-subj", "/CN=MPyC test CA")  # fmt: skip
    for i in range(count):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"party_{i}.key",
                "-out", f"party_{i}.csr", "-subj", f"/CN=MPyC party {i}")  # fmt: skip
        openssl("x509", "-req", "-in", f"party_{i}.csr", "-CA", "mpyc_ca.crt",
                "-CAkey", "mpyc_ca.key", "-CAcreateserial", "-out", f"party_{i}.crt",
                "-days", "2")  # fmt: skip


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_parties_talk_tls_and_refuse_a_certificate_of_another_ca(tmp_path: Path) -> None:
    _certificates(tmp_path / "tls", 3)
    collab = collaboration("sum", {"min_group_size": 1, "columns": {"value": "salary"}})
    rng = random.Random(17)
    data = [[rng.randrange(0, 1000) for _ in range(10)] for _ in range(3)]
    with running_nodes(3, tmp_path / "nodes", ssl_dir=tmp_path / "tls", retain_shares=True) as tls:
        async with httpx.AsyncClient() as http:
            engine = MpycEngine(tls.specs(), http, tls.token_secret, unreachable_grace=1.0)
            engine.run_timeout = 4.0
            inputs = [
                await upload(http, engine, collab, f"p{j}", {"value": rows}, f"s-tls-{j}")
                for j, rows in enumerate(data)
            ]
            await engine.run("run-tls", collab, inputs)
            assert (await wait_run(engine, "run-tls")).error is None
            result = await reveal(http, engine, collab, "run-tls")
            assert result.as_dict() == {"sum": sum(map(sum, data))}
            # party 2 now presents a self-signed certificate: no connection, no result
            config = tmp_path / "tls" / ".config"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                 "party_2.key", "-out", "party_2.crt", "-days", "2", "-subj", "/CN=MPyC party 2"],
                cwd=config, check=True, capture_output=True,
            )  # fmt: skip
            await engine.run("run-rogue", collab, inputs)
            status = await wait_run(engine, "run-rogue", 30.0)
            assert status.phase == "failed"
            assert status.error is not None


async def test_a_restarted_engine_ends_the_run_its_predecessor_left(nodes: LocalNodes) -> None:
    rng = random.Random(19)
    collab = collaboration(
        "median", {"min_group_size": 1, "columns": {"value": "salary"}}, cid="c-orphan"
    )
    data = [[rng.randrange(0, 10**6) for _ in range(100)] for _ in range(3)]
    async with httpx.AsyncClient() as http:
        before = MpycEngine(nodes.specs(), http, nodes.token_secret)
        inputs = [
            await upload(http, before, collab, f"p{j}", {"value": rows}, f"s-orphan-{j}")
            for j, rows in enumerate(data)
        ]
        await before.run("run-orphan", collab, inputs)
        coordinator = before.tokens.issue(Scope.COORDINATOR)
        deadline = time.monotonic() + 10.0
        while await node_clients(http, nodes)[0].run(coordinator, "run-orphan") is None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await before.close()  # the coordinator process went away; the nodes still run
        after = MpycEngine(nodes.specs(), http, nodes.token_secret)
        await after.run("run-again", collab, inputs)
        status = await wait_run(after, "run-again", 40.0)
        assert status.error is None
        (value,) = (await reveal(http, after, collab, "run-again")).values
        orphan = await node_clients(http, nodes)[1].run(coordinator, "run-orphan")
        assert orphan is not None
        assert orphan["state"] == "failed"
    assert value == float(np.median([v for rows in data for v in rows]))
