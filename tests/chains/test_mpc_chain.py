"""The mpc processor end to end: simulated PDCs, the gateway, three real MPyC node processes.

Results are checked against a plaintext recomputation on random data.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import random
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from chain_harness import local_nodes

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.testing import (
    ChainSpec,
    ChainStep,
    DataSource,
    Participant,
    PDCConfig,
    Representation,
    SimulatedPDC,
    serve,
)

pytestmark = pytest.mark.slow

CATALOG = "https://catalog.test/v1/catalog"
TARGET = f"{CATALOG}/serviceofferings/mpc"
FINAL = f"{CATALOG}/serviceofferings/mpc-final"
CATEGORIES = ["ops", "dev", "sales"]
EDGES = [0, 40_000, 60_000, 200_000]


def chain_file(path: Path, on_failure: str = "fail") -> Path:
    config = {
        "chains": [
            {
                "name": "payroll",
                "target_ids": [TARGET, FINAL],
                "deadline": 60,
                "on_failure": on_failure,
                "input": {
                    "records": "rows",
                    "min_rows": 2,
                    "columns": [
                        {
                            "name": "salary",
                            "path": "pay.gross",
                            "type": "integer",
                            "min": 0,
                            "max": 200_000,
                        },
                        {"name": "team", "type": "categorical", "categories": CATEGORIES},
                    ],
                },
                "parties": [
                    {"id": "provider", "thread": "origin"},
                    {"id": "north", "participant_id": "participant-north"},
                    {"id": "south", "participant_name": "South"},
                ],
                "computations": [
                    {
                        "name": "mean",
                        "program": "mean",
                        "parameters": {"columns": {"value": "salary"}, "min_group_size": 2},
                    },
                    {
                        "name": "variance",
                        "program": "variance",
                        "parameters": {"columns": {"value": "salary"}, "min_group_size": 2},
                    },
                    {
                        "name": "histogram",
                        "program": "histogram",
                        "parameters": {
                            "columns": {"value": "salary"},
                            "edges": EDGES,
                            "min_group_size": 1,
                        },
                    },
                    {
                        "name": "by_team",
                        "program": "histogram",
                        "parameters": {
                            "columns": {"value": "team"},
                            "edges": [0, 1, 2, 3],
                            "min_group_size": 1,
                        },
                        "labels": CATEGORIES,
                    },
                ],
                "result": {"key": "statistics", "params": {"purpose": "test"}},
            }
        ]
    }
    target = path / f"chains-{on_failure}.json"
    target.write_text(json.dumps(config))
    return target


def random_rows(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [
        {
            "ref": f"e{n}",
            "pay": {"gross": rng.randrange(20_000, 150_000)},
            "team": rng.choice(CATEGORIES),
        }
        for n in range(count)
    ]


def plaintext(rows: list[dict[str, Any]]) -> dict[str, Any]:
    salaries = [r["pay"]["gross"] for r in rows]
    histogram = [
        sum(1 for s in salaries if lo <= s < hi or (hi == EDGES[-1] and s == hi))
        for lo, hi in itertools.pairwise(EDGES)
    ]
    return {
        "mean": statistics.fmean(salaries),
        "variance": statistics.variance(salaries),
        "histogram": histogram,
        "by_team": {c: sum(1 for r in rows if r["team"] == c) for c in CATEGORIES},
    }


def check_statistics(got: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    want = plaintext(rows)
    assert math.isclose(got["mean"], want["mean"], rel_tol=1e-9)
    assert math.isclose(got["variance"], want["variance"], rel_tol=1e-9)
    assert list(got["histogram"].values()) == want["histogram"]
    assert got["by_team"] == want["by_team"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNodes]:
    with local_nodes(tmp_path_factory.mktemp("nodes")) as cluster:
        yield cluster


@dataclass
class Setup:
    url: str
    http: httpx.AsyncClient
    pdcs: dict[str, SimulatedPDC]
    app: Any

    async def job(self, job_id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = await self.http.get(f"{self.url}/jobs/{job_id}")
            if answer.status_code == 200 and answer.json()["state"] in states:
                return dict(answer.json())
            await _sleep(0.05)
        raise AssertionError(f"job {job_id} never reached {states}")


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def setup(
    nodes: LocalNodes, tmp_path: Path, on_failure: str = "fail"
) -> AsyncIterator[Setup]:
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        pdcs: dict[str, SimulatedPDC] = {}
        for role in ("origin", "additional", "node", "consumer"):
            pdc = SimulatedPDC(PDCConfig(name=role, db_delay=0.02), client=http)
            server = await stack.enter_async_context(serve(pdc, lifespan="off"))
            pdc.base_url = server.url
            pdcs[role] = pdc
        settings = Settings(
            store_url=f"sqlite:///{tmp_path / 'gw.db'}",
            pdc_url=pdcs["node"].base_url,
            resources=[
                {
                    "name": "mpc",
                    "path": "/mpc",
                    "processor": "mpc",
                    "chains": str(chain_file(tmp_path, on_failure)),
                }
            ],
            resume={"delay": 0.2},
            worker={"poll_interval": 0.1},
            coordination={"run_poll_interval": 0.1, "sweep_interval": 0.5},
            mpyc=nodes.settings(Settings().mpyc).model_dump(),
            log_level="warning",
            log_json=False,
        )
        app = create_app(settings, configure_logging=False)
        gateway = await stack.enter_async_context(serve(app))
        yield Setup(gateway.url, http, pdcs, app)


def merged_chain(s: Setup, datasets: dict[str, list[dict[str, Any]]]) -> ChainSpec:
    def source(name: str, participant: Participant) -> DataSource:
        url = s.pdcs["additional"].serve_data(name, {"rows": datasets[name]})
        return DataSource(
            offering=f"{CATALOG}/dataresources/{name}", url=url, participant=participant
        )

    origin_url = s.pdcs["origin"].serve_data("provider", {"rows": datasets["provider"]})
    return ChainSpec(
        source=DataSource(offering=f"{CATALOG}/dataresources/provider", url=origin_url),
        nodes=[
            ChainStep(
                offering=TARGET,
                representation=Representation(url=f"{s.url}/mpc"),
                params={"purpose": "payroll"},
                pre=[
                    source("north", Participant(name="North", id="participant-north")),
                    source("south", Participant(name="South", id="participant-south")),
                ],
                pdc_url=s.pdcs["node"].base_url,
            )
        ],
        consumer=ChainStep(
            offering=f"{CATALOG}/serviceofferings/consumer", pdc_url=s.pdcs["consumer"].base_url
        ),
    )


async def test_pre_chain_merge_computes_on_the_nodes_and_resumes(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    datasets = {
        name: random_rows(rng, rng.randrange(5, 40)) for name in ("provider", "north", "south")
    }
    async with setup(nodes, tmp_path) as s:
        chain_id = await s.pdcs["origin"].start_chain(merged_chain(s, datasets))
        output = await s.pdcs["consumer"].wait_for_output(chain_id, 60)
        data = output.data
        everything = [row for rows in datasets.values() for row in rows]
        check_statistics(data["statistics"], everything)
        assert data["parties"] == {name: len(rows) for name, rows in datasets.items()}
        assert set(data["computed_by"]["collaborations"]) == {
            "mean",
            "variance",
            "histogram",
            "by_team",
        }
        assert output.body["previousNodeParams"] == {
            "processor": "mpc",
            "chain": "payroll",
            "purpose": "test",
        }
        jobs = (await s.http.get(f"{s.url}/jobs")).json()["jobs"]
        assert len(jobs) == 1
        job = await s.job(jobs[0]["id"], "resumed")
        assert job["attempts"] == 1
        stored = await s.app.state.runtime.store.get(job["id"], with_data=True)
        assert stored.payload is None  # the plaintext is gone once the shares were uploaded
        collabs = (await s.http.get(f"{s.url}/v1/collaborations")).json()
        states = {c["state"] for c in collabs["collaborations"]}
        assert states == {"done"}


async def test_linear_chain_to_a_final_node_keeps_the_result(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    rows = random_rows(rng, 12)
    async with setup(nodes, tmp_path) as s:
        spec = ChainSpec(
            source=DataSource(data={"rows": rows}),
            consumer=ChainStep(offering=FINAL, representation=Representation(url=f"{s.url}/mpc")),
        )
        chain_id = await s.pdcs["origin"].start_chain(spec)
        jobs: list[Any] = []
        deadline = time.monotonic() + 10
        while not jobs and time.monotonic() < deadline:
            jobs = (await s.http.get(f"{s.url}/jobs")).json()["jobs"]
            await _sleep(0.05)
        job = await s.job(jobs[0]["id"], "completed", "failed")
        assert job["state"] == "completed" and job["final"] and job["chainId"] == chain_id
        result = (await s.http.get(f"{s.url}/jobs/{job['id']}/result")).json()
        check_statistics(result["data"]["statistics"], rows)
        assert result["data"]["parties"] == {"provider": 12}
        assert result["params"] == {"processor": "mpc", "chain": "payroll", "purpose": "test"}


async def test_bad_rows_are_refused_before_the_ack_and_nothing_is_stored(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rows = random_rows(random.Random(1), 5)
    rows[1]["pay"]["gross"] = -3
    rows[3]["team"] = "legal"
    del rows[4]["pay"]
    body = {
        "data": {
            "origin": {"rows": rows},
            "additionalData": [
                {
                    "participant": {"id": "participant-east", "name": "East"},
                    "data": {"rows": rows[:1]},
                }
            ],
        }
    }
    headers = {
        "x-ptx-service-chain-id": "@supervisor:" + "ab" * 64 + "-1-00000000",
        "x-ptx-target-id": TARGET,
        "x-ptx-service-chain-next-target": f"{CATALOG}/serviceofferings/consumer",
    }
    async with setup(nodes, tmp_path) as s:
        answer = await s.http.post(f"{s.url}/mpc", json=body, headers=headers)
        assert answer.status_code == 422
        problems = {(e["field"], e["problem"]) for e in answer.json()["errors"]}
        assert problems == {
            (
                "body.data.additionalData[0].participant",
                "not an input party of this chain configuration",
            ),
            ("body.data.origin[1].pay.gross", "below the minimum 0"),
            ("body.data.origin[3].team", "not one of the 3 categories"),
            ("body.data.origin[4].pay.gross", "missing value"),
        }
        unknown = await s.http.post(
            f"{s.url}/mpc",
            json={"data": {"rows": rows[:1]}},
            headers={**headers, "x-ptx-target-id": "https://x/other"},
        )
        assert unknown.status_code == 404
        assert (await s.http.get(f"{s.url}/jobs")).json()["jobs"] == []
        assert (await s.http.get(f"{s.url}/v1/collaborations")).json()["collaborations"] == []


async def test_a_node_down_after_the_ack_resumes_with_an_error_object(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rows = random_rows(random.Random(2), 6)
    async with setup(nodes, tmp_path, on_failure="resume_error") as s:
        nodes.kill_node(2)
        try:
            spec = ChainSpec(
                source=DataSource(data={"rows": rows}),
                nodes=[
                    ChainStep(
                        offering=TARGET,
                        representation=Representation(url=f"{s.url}/mpc"),
                        pdc_url=s.pdcs["node"].base_url,
                    )
                ],
                consumer=ChainStep(
                    offering=f"{CATALOG}/serviceofferings/consumer",
                    pdc_url=s.pdcs["consumer"].base_url,
                ),
            )
            chain_id = await s.pdcs["origin"].start_chain(spec)
            output = await s.pdcs["consumer"].wait_for_output(chain_id, 30)
        finally:
            nodes.restart_node(2)
            nodes.wait_ready(30)
        error = output.data["error"]
        assert error["code"] == "mpc_failed" and error["chain"] == "payroll"
        assert "node 2" in error["message"] and "unreachable" in error["message"]
        assert output.body["previousNodeParams"]["status"] == "error"
