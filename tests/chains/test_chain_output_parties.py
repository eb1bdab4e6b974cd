"""A final chain node delivers its result to the chain configuration's output parties.

The gateway and three real MPyC node processes; the simulated PDC starts a chain whose
last step is the MPC node. The configured output party ``dashboard`` is a small HTTP
receiver on 127.0.0.1 that checks the coordinator's signed notification, then fetches its
own result shares with ``ptx-chain-node client result`` (a real process) and the bearer
token the operator issued it (only its sha256 is in the chain configuration). Its results
and the job's are checked against the plaintext of the same random data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from chain_harness import local_nodes
from notify_receiver import Receiver

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.coordination.tokens import issue_party_token
from ptx_chain_node.testing import (
    ChainSpec,
    ChainStep,
    DataSource,
    PDCConfig,
    Representation,
    SimulatedPDC,
    serve,
)

pytestmark = pytest.mark.slow

FINAL = "https://catalog.test/v1/catalog/serviceofferings/mpc-final"
NOTIFY_SECRET = "the-dashboard-notify-secret"
EDGES = [0, 50_000, 100_000, 200_000]


def chain_file(path: Path, endpoint: str, token_sha256: str) -> Path:
    salary = {"columns": {"value": "salary"}, "min_group_size": 2}
    config = {
        "chains": [
            {
                "name": "payroll",
                "target_ids": [FINAL],
                "deadline": 60,
                "input": {
                    "records": "rows",
                    "columns": [
                        {"name": "salary", "path": "pay", "type": "integer", "min": 0},
                    ],
                },
                "parties": [{"id": "provider", "thread": "origin"}],
                "computations": [
                    {"name": "mean", "program": "mean", "parameters": salary},
                    {
                        "name": "histogram",
                        "program": "histogram",
                        "parameters": {**salary, "edges": EDGES},
                    },
                ],
                "output_parties": [
                    {
                        "id": "dashboard",
                        "endpoint": endpoint,
                        "notify_secret": NOTIFY_SECRET,
                        "token_sha256": token_sha256,
                    }
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


@dataclass
class Setup:
    url: str
    http: httpx.AsyncClient
    origin: SimulatedPDC
    receiver: Receiver
    token: str


@contextlib.asynccontextmanager
async def setup(nodes: LocalNodes, tmp_path: Path) -> AsyncIterator[Setup]:
    issued = issue_party_token()  # the operator hands issued.value to the dashboard
    receiver = Receiver(NOTIFY_SECRET)
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        dashboard = await stack.enter_async_context(serve(receiver, lifespan="off"))
        origin = SimulatedPDC(PDCConfig(name="origin", db_delay=0.02), client=http)
        server = await stack.enter_async_context(serve(origin, lifespan="off"))
        origin.base_url = server.url
        settings = Settings(
            store_url=f"sqlite:///{tmp_path / 'gw.db'}",
            pdc_url="http://127.0.0.1:9",  # a final node: nothing is resumed
            resources=[
                {
                    "name": "mpc",
                    "path": "/mpc",
                    "processor": "mpc",
                    "chains": str(chain_file(tmp_path, f"{dashboard.url}/client", issued.sha256)),
                }
            ],
            worker={"poll_interval": 0.1},
            coordination={
                "run_poll_interval": 0.1,
                "sweep_interval": 0.5,
                "notify_initial_backoff": 0.05,
            },
            mpyc=nodes.settings(Settings().mpyc).model_dump(),
            log_level="warning",
            log_json=False,
        )
        app = create_app(settings, configure_logging=False)
        gateway = await stack.enter_async_context(serve(app))
        yield Setup(gateway.url, http, origin, receiver, issued.value)


async def client_result(url: str, cid: str, token: str) -> tuple[int, dict[str, Any]]:
    """``ptx-chain-node client result`` as the output party runs it on its own machine."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "client",
        "result",
        "--coordinator",
        url,
        "--collaboration",
        cid,
        "--party",
        "dashboard",
        "--token",
        token,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def completed_job(s: Setup, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = (await s.http.get(f"{s.url}/jobs")).json()["jobs"]
        if jobs and jobs[0]["state"] in ("completed", "failed"):
            return dict(jobs[0])
        await asyncio.sleep(0.05)
    raise AssertionError("the job did not end")


async def test_the_output_party_of_a_final_node_gets_the_result_with_its_own_token(
    nodes: LocalNodes, tmp_path: Path
) -> None:
    rng = random.Random()
    rows = [{"pay": rng.randrange(0, 200_001)} for _ in range(rng.randrange(5, 40))]
    salaries = [r["pay"] for r in rows]
    want_mean = statistics.fmean(salaries)
    want_bins = [
        sum(1 for s in salaries if lo <= s < hi or (hi == EDGES[-1] and s == hi))
        for lo, hi in itertools.pairwise(EDGES)
    ]
    async with setup(nodes, tmp_path) as s:
        spec = ChainSpec(
            source=DataSource(data={"rows": rows}),
            consumer=ChainStep(offering=FINAL, representation=Representation(url=f"{s.url}/mpc")),
        )
        await s.origin.start_chain(spec)
        job = await completed_job(s)
        assert job["state"] == "completed" and job["final"]
        result = (await s.http.get(f"{s.url}/jobs/{job['id']}/result")).json()
        statistics_ = result["data"]["statistics"]
        assert math.isclose(statistics_["mean"], want_mean, rel_tol=1e-9)
        assert list(statistics_["histogram"].values()) == want_bins
        collaborations = result["data"]["computed_by"]["collaborations"]

        # The dashboard was told, with a signature made with its secret, ...
        notices = await s.receiver.wait(len(collaborations))
        assert s.receiver.refused == 0
        assert sorted(n["collaborationId"] for n in notices) == sorted(collaborations.values())
        assert all(n["state"] == "done" and n["code"] == 200 for n in notices)

        # ... and fetches its own (re-randomised) result shares with its own token.
        code, mean = await client_result(s.url, collaborations["mean"], s.token)
        assert code == 0, mean
        assert math.isclose(float(mean["result"]["mean"]), want_mean, rel_tol=1e-9)
        code, histogram = await client_result(s.url, collaborations["histogram"], s.token)
        assert code == 0, histogram
        assert [int(v) for v in histogram["result"].values()] == want_bins

        # Another token is not the dashboard's: no result shares for it.
        code, refused = await client_result(
            s.url, collaborations["mean"], issue_party_token().value
        )
        assert code == 1 and refused["code"] == 403, refused
