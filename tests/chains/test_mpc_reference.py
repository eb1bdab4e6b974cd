"""Inputs by reference: one party uploads with its own client; its thread names the secrets.

The gateway and three real MPyC node processes; the operator registers the referenced party
over HTTP (``POST /chains/{name}/parties``) or in process, and the party uses the client
code path (``upload_file``, as ``ptx-chain-node client upload``) over HTTP against the
gateway's coordinator and the same nodes, before or after the chain step arrives. Results
are checked against plaintext on random data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chain_harness import local_nodes

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.chains.config import ChainConfig, load_chain_file
from ptx_chain_node.chains.processor import MpcProcessor, collaboration_id
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.mpc.upload import upload_file
from ptx_chain_node.testing import serve

pytestmark = pytest.mark.slow

FINAL = "https://catalog.test/v1/catalog/serviceofferings/mpc-final"
EDGES = [0, 50_000, 100_000, 200_000]
OPERATOR = "operator-token-for-tests-0123456789"
PARTIES_URL = "/chains/payroll/parties"


def chain_file(path: Path, deadline: float = 60) -> Path:
    salary = {"columns": {"value": "salary"}, "min_group_size": 1}
    config = {
        "chains": [
            {
                "name": "payroll",
                "target_ids": [FINAL],
                "deadline": deadline,
                "input": {
                    "records": "rows",
                    "columns": [
                        {
                            "name": "salary",
                            "path": "pay",
                            "type": "integer",
                            "min": 0,
                            "max": 200_000,
                        }
                    ],
                },
                "parties": [
                    {"id": "provider", "thread": "origin"},
                    {"id": "north", "participant_id": "participant-north"},
                    {"id": "south", "participant_id": "participant-south"},
                ],
                "computations": [
                    {"name": "mean", "program": "mean", "parameters": salary},
                    {
                        "name": "histogram",
                        "program": "histogram",
                        "parameters": {**salary, "edges": EDGES},
                    },
                ],
                "result": {"key": "statistics"},
            }
        ]
    }
    target = path / "chains.json"
    target.write_text(json.dumps(config))
    return target


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with local_nodes(tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


@contextlib.asynccontextmanager
async def gateway(
    nodes: LocalNodes, tmp_path: Path, deadline: float = 60
) -> AsyncIterator[tuple[str, Any, Path]]:
    config = chain_file(tmp_path, deadline)
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'gw.db'}",
        pdc_url="http://127.0.0.1:9",  # a final node: nothing is resumed
        resources=[{"name": "mpc", "path": "/mpc", "processor": "mpc", "chains": str(config)}],
        worker={"poll_interval": 0.1},
        coordination={"run_poll_interval": 0.1, "sweep_interval": 0.5},
        mpyc=nodes.settings(Settings().mpyc).model_dump(),
        operator_token=OPERATOR,
        log_level="warning",
        log_json=False,
    )
    app = create_app(settings, configure_logging=False)
    async with serve(app) as server:
        yield server.url, app, config


def rows_of(rng: random.Random, count: int) -> list[dict[str, int]]:
    return [{"pay": rng.randrange(0, 200_001)} for _ in range(count)]


async def upload_by_client(
    url: str,
    tmp_path: Path,
    tokens: dict[str, dict[str, str]],
    rows: list[dict[str, int]],
    chosen: dict[str, list[str]] | None = None,
) -> dict[str, list[str]]:
    """The party's own client: one upload per collaboration; its secret ids per computation.

    ``chosen``: the secret ids to upload under (named in the thread before the upload).
    """
    path = tmp_path / "north-rows.json"
    path.write_text(json.dumps([{"salary": r["pay"]} for r in rows]))
    secret_ids = {}
    for computation, grant in tokens.items():
        receipt = await upload_file(
            url,
            grant["collaboration_id"],
            "north",
            grant["token"],
            path,
            secret_id=chosen[computation][0] if chosen else None,
        )
        assert receipt["rows"] == len(rows)
        secret_ids[computation] = receipt["secret_ids"]
    return secret_ids


async def register_by_http(
    http: httpx.AsyncClient, url: str, chain_id: str, party_id: str = "north"
) -> httpx.Response:
    """The operator registers a thread's party ahead of its chain, over HTTP."""
    return await http.post(
        url + PARTIES_URL,
        json={"chain_id": chain_id, "party_id": party_id},
        headers={"authorization": f"Bearer {OPERATOR}"},
    )


def reference_to(rows: int, secret_ids: dict[str, list[str]]) -> dict[str, Any]:
    return {"ptx_mpc_reference": {"rows": rows, "secret_ids": secret_ids}}


def check_result(result: dict[str, Any], datasets: dict[str, list[dict[str, int]]]) -> None:
    """The MPC result equals the plaintext recomputation over every party's rows."""
    salaries = [r["pay"] for rows in datasets.values() for r in rows]
    assert math.isclose(result["statistics"]["mean"], statistics.fmean(salaries), rel_tol=1e-9)
    want = [
        sum(1 for s in salaries if lo <= s < hi or s == hi == EDGES[-1])
        for lo, hi in itertools.pairwise(EDGES)
    ]
    assert list(result["statistics"]["histogram"].values()) == want
    assert result["parties"] == {name: len(rows) for name, rows in datasets.items()}


def request(datasets: dict[str, list[dict[str, int]]], reference: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "origin": {"rows": datasets["provider"]},
            "additionalData": [
                {"participant": {"id": "participant-north"}, "data": reference},
                {"participant": {"id": "participant-south"}, "data": {"rows": datasets["south"]}},
            ],
        }
    }


async def settled(
    http: httpx.AsyncClient, url: str, job_id: str, within: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await http.get(f"{url}/jobs/{job_id}")).json()
        if job["state"] in ("completed", "failed", "held"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not settle")


def headers(chain_id: str) -> dict[str, str]:
    return {"x-ptx-service-chain-id": chain_id, "x-ptx-target-id": FINAL}


async def prepare(
    app: Any, config_path: Path, chain_id: str
) -> tuple[MpcProcessor, ChainConfig, dict[str, dict[str, str]]]:
    processor = app.state.runtime.processor_for("mpc")
    assert isinstance(processor, MpcProcessor)
    config = load_chain_file(config_path).chains[0]
    return processor, config, await processor.register_reference(config, chain_id, "north")


async def job_of(http: httpx.AsyncClient, url: str) -> str:
    job_id: str = (await http.get(f"{url}/jobs")).json()["jobs"][0]["id"]
    return job_id


async def test_a_party_registered_over_http_joins_the_computation_without_its_rows(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    datasets = {name: rows_of(rng, rng.randrange(3, 30)) for name in ("provider", "north", "south")}
    chain_id = "@supervisor:" + "cd" * 64 + "-1-00000001"
    async with (
        gateway(nodes, tmp_path) as (url, app, _),
        httpx.AsyncClient(timeout=30) as http,
    ):
        registered = await register_by_http(http, url, chain_id)
        assert registered.status_code == 201, registered.text
        tokens = registered.json()
        assert set(tokens) == {"mean", "histogram"}
        assert all(set(grant) == {"collaboration_id", "token"} for grant in tokens.values())
        secret_ids = await upload_by_client(url, tmp_path, tokens, datasets["north"])
        again = await register_by_http(http, url, chain_id)
        assert again.status_code == 409, again.text
        assert [e["field"] for e in again.json()["errors"]] == ["party_id"]
        assert "already uploaded" in again.json()["message"]
        reference = reference_to(len(datasets["north"]), secret_ids)
        body = request(datasets, reference)
        assert "north" not in json.dumps(body["data"]["origin"])
        answer = await http.post(f"{url}/mpc", json=body, headers=headers(chain_id))
        assert answer.status_code in (200, 202), answer.text
        job_id = await job_of(http, url)
        job = await settled(http, url, job_id)
        assert job["state"] == "completed", job
        check_result((await http.get(f"{url}/jobs/{job_id}/result")).json()["data"], datasets)
        # What the gateway received for north: the reference only, never a row of north.
        stored = await app.state.runtime.store.get(job_id, with_data=True)
        assert stored.payload is None  # the by-value rows are gone too, once shared
        north_thread = body["data"]["additionalData"][0]["data"]
        assert north_thread == reference and "rows" not in north_thread


async def test_the_registration_route_refuses_bad_callers_and_names_what_is_wrong(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    chain_id = "@supervisor:" + "ab" * 64 + "-1-00000009"
    body = {"chain_id": chain_id, "party_id": "north"}
    async with (
        gateway(nodes, tmp_path) as (url, app, _),
        httpx.AsyncClient(timeout=30) as http,
    ):
        for auth in ({}, {"authorization": "Bearer not-the-operator-token"}):
            refused = await http.post(url + PARTIES_URL, json=body, headers=auth)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == 401
        operator = {"authorization": f"Bearer {OPERATOR}"}
        unknown = await http.post(
            url + PARTIES_URL, json={**body, "party_id": "west"}, headers=operator
        )
        assert unknown.status_code == 422, unknown.text
        assert [e["field"] for e in unknown.json()["errors"]] == ["party_id"]
        missing = await http.post(url + PARTIES_URL, json={"party_id": "north"}, headers=operator)
        assert missing.status_code == 422
        assert [e["field"] for e in missing.json()["errors"]] == ["body.chain_id"]
        no_chain = await http.post(url + "/chains/nope/parties", json=body, headers=operator)
        assert no_chain.status_code == 404
        assert [e["field"] for e in no_chain.json()["errors"]] == ["path.name"]
        # None of these created a collaboration; asking again before an upload re-issues.
        coordinator = app.state.runtime.coordination.coordinator
        assert await coordinator.collaborations() == []
        first = (await register_by_http(http, url, chain_id)).json()
        second = await register_by_http(http, url, chain_id)
        assert second.status_code == 201
        assert {c: g["collaboration_id"] for c, g in second.json().items()} == {
            c: g["collaboration_id"] for c, g in first.items()
        }
        assert all(second.json()[c]["token"] != g["token"] for c, g in first.items())


async def test_a_reference_delivered_before_the_upload_waits_for_it(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    datasets = {name: rows_of(rng, rng.randrange(3, 30)) for name in ("provider", "north", "south")}
    chain_id = "@supervisor:" + "12" * 64 + "-1-00000004"
    # The party chooses its secret ids ahead and names them in its thread.
    chosen = {name: [str(uuid.uuid4())] for name in ("mean", "histogram")}
    async with (
        gateway(nodes, tmp_path) as (url, app, config_path),
        httpx.AsyncClient(timeout=30) as http,
    ):
        tokens = (await register_by_http(http, url, chain_id)).json()
        reference = reference_to(len(datasets["north"]), chosen)
        answer = await http.post(
            f"{url}/mpc", json=request(datasets, reference), headers=headers(chain_id)
        )
        assert answer.status_code in (200, 202), answer.text
        job_id = await job_of(http, url)
        await asyncio.sleep(1.5)
        job = (await http.get(f"{url}/jobs/{job_id}")).json()
        assert job["state"] == "received", job  # waiting for north, nothing shared yet
        config = load_chain_file(config_path).chains[0]
        store = app.state.runtime.coordination.coordinator.store
        for computation in config.computations:
            cid = collaboration_id(config, chain_id, computation)
            assert [p.party_id for p in await store.parties(cid, Role.INPUT)] == ["north"]
        assert await upload_by_client(url, tmp_path, tokens, datasets["north"], chosen) == chosen
        uploaded_at = time.monotonic()
        job = await settled(http, url, job_id)
        assert job["state"] == "completed", job
        check_result((await http.get(f"{url}/jobs/{job_id}/result")).json()["data"], datasets)
        print(f"upload confirmed -> job completed: {time.monotonic() - uploaded_at:.2f} s")
        # Woken by the confirmation, not the store re-read (every 5 s): the first row upload
        # of the other threads followed north's last confirmation at once.
        first, last = (collaboration_id(config, chain_id, c) for c in config.computations)
        north = next(p for p in await store.parties(last, Role.INPUT) if p.party_id == "north")
        rows = [p for p in await store.parties(first, Role.INPUT) if p.party_id != "north"]
        assert north.confirmed_at is not None and rows
        gap = min(p.confirmed_at or math.inf for p in rows) - north.confirmed_at
        print(f"north's last confirmation -> first row upload confirmed: {gap:.2f} s")
        assert 0 < gap < 3.0


async def test_a_reference_whose_upload_never_comes_fails_at_the_deadline(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    datasets = {name: rows_of(rng, 5) for name in ("provider", "north", "south")}
    chain_id = "@supervisor:" + "34" * 64 + "-1-00000005"
    deadline = 3.0
    async with (
        gateway(nodes, tmp_path, deadline=deadline) as (url, app, config_path),
        httpx.AsyncClient(timeout=30) as http,
    ):
        registered_at = time.monotonic()
        assert (await register_by_http(http, url, chain_id)).status_code == 201
        chosen = {name: [str(uuid.uuid4())] for name in ("mean", "histogram")}
        answer = await http.post(
            f"{url}/mpc", json=request(datasets, reference_to(5, chosen)), headers=headers(chain_id)
        )
        assert answer.status_code in (200, 202), answer.text
        job = await settled(http, url, await job_of(http, url), within=30)
        elapsed = time.monotonic() - registered_at
        assert job["state"] == "failed", job
        assert "input party 'north', computation 'mean'" in job["lastError"]
        assert "no confirmed upload by the collaboration's deadline" in job["lastError"]
        assert "(collaboration expired)" in job["lastError"]
        assert deadline - 0.5 <= elapsed < deadline + 10, elapsed
        # The other threads' rows were never shared into the expired collaboration.
        config = load_chain_file(config_path).chains[0]
        store = app.state.runtime.coordination.coordinator.store
        cid = collaboration_id(config, chain_id, config.computations[0])
        assert [p.party_id for p in await store.parties(cid, Role.INPUT)] == ["north"]


async def test_a_reference_to_other_secrets_fails_the_job_at_once(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    datasets = {name: rows_of(rng, 5) for name in ("provider", "north", "south")}
    chain_id = "@supervisor:" + "ef" * 64 + "-1-00000002"
    async with (
        gateway(nodes, tmp_path) as (url, app, config_path),
        httpx.AsyncClient(timeout=30) as http,
    ):
        processor, config, tokens = await prepare(app, config_path, chain_id)
        secret_ids = await upload_by_client(url, tmp_path, tokens, datasets["north"])
        with pytest.raises(Exception, match="already uploaded"):
            await processor.register_reference(config, chain_id, "north")
        wrong = {**secret_ids, "mean": ["not-the-uploaded-secret"]}
        delivered_at = time.monotonic()
        answer = await http.post(
            f"{url}/mpc", json=request(datasets, reference_to(5, wrong)), headers=headers(chain_id)
        )
        assert answer.status_code in (200, 202), answer.text
        job = await settled(http, url, await job_of(http, url))
        assert time.monotonic() - delivered_at < 30  # not at the 60 s deadline
        assert job["state"] == "failed"
        assert "the reference is not the confirmed upload" in job["lastError"]
        bad = {"ptx_mpc_reference": {"rows": 5, "secret_ids": {"mean": ["x"]}}}
        refused = await http.post(
            f"{url}/mpc",
            json=request(datasets, bad),
            headers=headers("@supervisor:" + "ef" * 64 + "-1-00000003"),
        )
        assert refused.status_code == 422
        fields = {e["field"] for e in refused.json()["errors"]}
        assert fields == {"body.data.additionalData[0].data.ptx_mpc_reference.secret_ids.histogram"}
