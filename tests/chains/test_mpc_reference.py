"""Inputs by reference: one party uploads with its own client; its thread names the secrets.

The gateway and three real MPyC node processes; the referenced party uses the client code
path (``upload_file``, as ``ptx-chain-node client upload``) over HTTP against the gateway's
coordinator and the same nodes. Results are checked against plaintext on random data.
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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.chains.config import ChainConfig, load_chain_file
from ptx_chain_node.chains.processor import MpcProcessor
from ptx_chain_node.mpc.upload import upload_file
from ptx_chain_node.testing import serve

pytestmark = pytest.mark.slow

FINAL = "https://catalog.test/v1/catalog/serviceofferings/mpc-final"
EDGES = [0, 50_000, 100_000, 200_000]


def chain_file(path: Path) -> Path:
    salary = {"columns": {"value": "salary"}, "min_group_size": 1}
    config = {
        "chains": [
            {
                "name": "payroll",
                "target_ids": [FINAL],
                "deadline": 60,
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
    cluster = LocalNodes(3, tmp_path_factory.mktemp("nodes"), run_timeout=30)
    cluster.start()
    try:
        cluster.wait_ready(30.0)
        yield cluster
    finally:
        cluster.stop()


@contextlib.asynccontextmanager
async def gateway(nodes: LocalNodes, tmp_path: Path) -> AsyncIterator[tuple[str, Any, Path]]:
    config = chain_file(tmp_path)
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'gw.db'}",
        pdc_url="http://127.0.0.1:9",  # a final node: nothing is resumed
        resources=[{"name": "mpc", "path": "/mpc", "processor": "mpc", "chains": str(config)}],
        worker={"poll_interval": 0.1},
        coordination={"run_poll_interval": 0.1, "sweep_interval": 0.5},
        mpyc=nodes.settings(Settings().mpyc).model_dump(),
        log_level="warning",
        log_json=False,
    )
    app = create_app(settings, configure_logging=False)
    async with serve(app) as server:
        yield server.url, app, config


def rows_of(rng: random.Random, count: int) -> list[dict[str, int]]:
    return [{"pay": rng.randrange(0, 200_001)} for _ in range(count)]


async def upload_by_client(
    url: str, tmp_path: Path, tokens: dict[str, dict[str, str]], rows: list[dict[str, int]]
) -> dict[str, list[str]]:
    """The party's own client: one upload per collaboration; its secret ids per computation."""
    path = tmp_path / "north-rows.json"
    path.write_text(json.dumps([{"salary": r["pay"]} for r in rows]))
    secret_ids = {}
    for computation, grant in tokens.items():
        receipt = await upload_file(url, grant["collaboration_id"], "north", grant["token"], path)
        assert receipt["rows"] == len(rows)
        secret_ids[computation] = receipt["secret_ids"]
    return secret_ids


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


async def settled(http: httpx.AsyncClient, url: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
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


async def test_a_thread_by_reference_joins_the_computation_without_its_rows(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    datasets = {name: rows_of(rng, rng.randrange(3, 30)) for name in ("provider", "north", "south")}
    chain_id = "@supervisor:" + "cd" * 64 + "-1-00000001"
    async with (
        gateway(nodes, tmp_path) as (url, app, config_path),
        httpx.AsyncClient(timeout=30) as http,
    ):
        _, _, tokens = await prepare(app, config_path, chain_id)
        assert set(tokens) == {"mean", "histogram"}
        secret_ids = await upload_by_client(url, tmp_path, tokens, datasets["north"])
        reference = {
            "ptx_mpc_reference": {"rows": len(datasets["north"]), "secret_ids": secret_ids}
        }
        body = request(datasets, reference)
        assert "north" not in json.dumps(body["data"]["origin"])
        answer = await http.post(f"{url}/mpc", json=body, headers=headers(chain_id))
        assert answer.status_code in (200, 202), answer.text
        job_id = (await http.get(f"{url}/jobs")).json()["jobs"][0]["id"]
        job = await settled(http, url, job_id)
        assert job["state"] == "completed", job
        result = (await http.get(f"{url}/jobs/{job_id}/result")).json()["data"]
        salaries = [r["pay"] for rows in datasets.values() for r in rows]
        assert math.isclose(result["statistics"]["mean"], statistics.fmean(salaries), rel_tol=1e-9)
        want = [
            sum(1 for s in salaries if lo <= s < hi or s == hi == EDGES[-1])
            for lo, hi in itertools.pairwise(EDGES)
        ]
        assert list(result["statistics"]["histogram"].values()) == want
        assert result["parties"] == {name: len(rows) for name, rows in datasets.items()}
        # What the gateway received for north: the reference only, never a row of north.
        stored = await app.state.runtime.store.get(job_id, with_data=True)
        assert stored.payload is None  # the by-value rows are gone too, once shared
        north_thread = body["data"]["additionalData"][0]["data"]
        assert north_thread == reference and "rows" not in north_thread


async def test_a_reference_to_other_secrets_fails_the_job(
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
        reference = {"ptx_mpc_reference": {"rows": 5, "secret_ids": wrong}}
        answer = await http.post(
            f"{url}/mpc", json=request(datasets, reference), headers=headers(chain_id)
        )
        assert answer.status_code in (200, 202), answer.text
        job_id = (await http.get(f"{url}/jobs")).json()["jobs"][0]["id"]
        job = await settled(http, url, job_id)
        assert job["state"] == "failed"
        assert "the reference is not the confirmed upload" in json.dumps(job)
        bad = {"ptx_mpc_reference": {"rows": 5, "secret_ids": {"mean": ["x"]}}}
        refused = await http.post(
            f"{url}/mpc",
            json=request(datasets, bad),
            headers=headers("@supervisor:" + "ef" * 64 + "-1-00000003"),
        )
        assert refused.status_code == 422
        fields = {e["field"] for e in refused.json()["errors"]}
        assert fields == {"body.data.additionalData[0].data.ptx_mpc_reference.secret_ids.histogram"}
