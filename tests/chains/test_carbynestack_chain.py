"""A chain step on the ``carbynestack`` engine: simulated PDCs, the gateway, 3 fake VCPs.

Each fake VCP (:class:`ptx_chain_node.testing.fake_vcp.FakeVcp`) is served by its own
uvicorn on 127.0.0.1; the chain configuration's ``compute_config`` names them. The gateway
shares each thread's rows at every VCP (masks checked), the engine runs the templates, the
gateway reads and checks the result secrets and resumes the chain; the configured output
party gets the signed notification and reads the result secrets with its own client. Every
result is checked against the plaintext of the same random data.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from notify_receiver import Receiver

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node.carbynestack import CarbyneStackClient, ComputeConfig
from ptx_chain_node.carbynestack.coordination_engine import TOKEN_ENV
from ptx_chain_node.carbynestack.party import result_of
from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.tokens import issue_party_token
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
from ptx_chain_node.testing.fake_vcp import FakeCarbyneStack

pytestmark = pytest.mark.slow

VCP_TOKEN = "vcp-token-for-the-test"
NOTIFY_SECRET = "notify-secret-of-the-dashboard"
CATALOG = "https://catalog.test/v1/catalog"
TARGET = f"{CATALOG}/serviceofferings/mpc-cs"
EDGES = [0, 7, 14, 30, 61]


def compute_config(urls: list[str]) -> dict[str, Any]:
    """The cloud's compute config with each provider at its loopback server."""
    doc = FakeCarbyneStack(2).config.as_json()
    doc["providers"] = [
        {
            "id": i,
            "amphoraServiceUrl": f"{url}/amphora",
            "castorServiceUrl": f"{url}/castor",
            "ephemeralServiceUrl": f"{url}/ephemeral",
            "baseUrl": f"{url}/",
        }
        for i, url in enumerate(urls, start=1)
    ]
    doc["noSslValidation"] = False
    return doc


def chain_file(path: Path, config: dict[str, Any], dashboard: str, token_sha256: str) -> Path:
    document = {
        "chains": [
            {
                "name": "stays",
                "target_ids": [TARGET],
                "engine": "carbynestack",
                "compute_config": config,
                "deadline": 60,
                "on_failure": "resume_error",
                "input": {
                    "records": "rows",
                    "columns": [
                        {"name": "stay", "path": "days", "type": "integer", "min": 0, "max": 60},
                        {"name": "cost", "type": "fixed", "scale": 2, "min": -500, "max": 5000},
                    ],
                },
                "parties": [
                    {"id": "provider", "thread": "origin"},
                    {"id": "north", "participant_id": "participant-north"},
                    {"id": "south", "participant_name": "South"},
                ],
                "computations": [
                    {"name": "total", "program": "sum", "version": "1"},
                    {
                        "name": "mean_stay",
                        "program": "mean",
                        "version": "1",
                        "parameters": {"columns": ["stay"]},
                    },
                    {
                        "name": "stay_bins",
                        "program": "histogram",
                        "version": "1",
                        "parameters": {"columns": ["stay"], "edges": EDGES},
                    },
                ],
                "output_parties": [
                    {
                        "id": "dashboard",
                        "endpoint": dashboard,
                        "notify_secret": NOTIFY_SECRET,
                        "token_sha256": token_sha256,
                    }
                ],
                "result": {"key": "statistics"},
            }
        ]
    }
    target = path / "chains.json"
    target.write_text(json.dumps(document))
    return target


def random_rows(rng: random.Random, count: int) -> list[dict[str, Any]]:
    return [
        {"days": rng.randint(0, 60), "cost": str(Decimal(rng.randint(-50_000, 500_000)) / 100)}
        for _ in range(count)
    ]


def plaintext(rows: list[dict[str, Any]]) -> dict[str, Any]:
    stays = [r["days"] for r in rows]
    return {
        "total": {"stay": sum(stays), "cost": sum(Decimal(r["cost"]) for r in rows)},
        "mean_stay": Fraction(sum(stays), len(stays)),
        "stay_bins": [
            sum(1 for s in stays if lo <= s < hi) for lo, hi in itertools.pairwise(EDGES)
        ],
    }


def check(statistics: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    want = plaintext(rows)
    assert statistics["total"]["stay"] == want["total"]["stay"]
    assert Decimal(str(statistics["total"]["cost"])) == want["total"]["cost"]
    assert abs(Fraction(statistics["mean_stay"]) - want["mean_stay"]) <= Fraction(1, 2**15)
    assert list(statistics["stay_bins"].values()) == want["stay_bins"]
    assert list(statistics["stay_bins"]) == [f"[{a}, {b})" for a, b in itertools.pairwise(EDGES)]


@dataclass
class Setup:
    url: str
    http: httpx.AsyncClient
    pdcs: dict[str, SimulatedPDC]
    cloud: FakeCarbyneStack
    config: dict[str, Any]
    receiver: Receiver


@contextlib.asynccontextmanager
async def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Setup]:
    monkeypatch.setenv(TOKEN_ENV, VCP_TOKEN)
    cloud = FakeCarbyneStack(3, token=VCP_TOKEN, game_timeout=5.0)
    receiver = Receiver(NOTIFY_SECRET)
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        vcps = [await stack.enter_async_context(serve(v, lifespan="off")) for v in cloud.vcps]
        config = compute_config([v.url for v in vcps])
        dashboard = await stack.enter_async_context(serve(receiver, lifespan="off"))
        pdcs: dict[str, SimulatedPDC] = {}
        for role in ("origin", "additional", "node", "consumer"):
            pdc = SimulatedPDC(PDCConfig(name=role, db_delay=0.02), client=http)
            server = await stack.enter_async_context(serve(pdc, lifespan="off"))
            pdc.base_url = server.url
            pdcs[role] = pdc
        token_sha256 = issue_party_token().sha256
        chains = chain_file(tmp_path, config, f"{dashboard.url}/client", token_sha256)
        settings = Settings(
            store_url=f"sqlite:///{tmp_path / 'gw.db'}",
            pdc_url=pdcs["node"].base_url,
            resources=[{"name": "mpc", "path": "/mpc", "processor": "mpc", "chains": str(chains)}],
            resume={"delay": 0.2},
            worker={"poll_interval": 0.1},
            coordination={
                "engines": ["carbynestack"],
                "run_poll_interval": 0.05,
                "sweep_interval": 0.5,
                "notify_initial_backoff": 0.05,
            },
            mpyc={"local_nodes": 0},
            log_level="warning",
            log_json=False,
        )
        app = create_app(settings, configure_logging=False)
        gateway = await stack.enter_async_context(serve(app))
        yield Setup(gateway.url, http, pdcs, cloud, config, receiver)


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


async def test_a_chain_step_on_fake_vcps_equals_plaintext_and_reaches_the_output_party(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random()
    datasets = {
        name: random_rows(rng, rng.randrange(3, 30)) for name in ("provider", "north", "south")
    }
    everything = [row for rows in datasets.values() for row in rows]
    async with setup(tmp_path, monkeypatch) as s:
        chain_id = await s.pdcs["origin"].start_chain(merged_chain(s, datasets))
        output = await s.pdcs["consumer"].wait_for_output(chain_id, 60)
        data = output.data
        assert "error" not in data, data
        check(data["statistics"], everything)
        assert data["parties"] == {name: len(rows) for name, rows in datasets.items()}
        assert data["computed_by"]["engine"] == "carbynestack"
        # every thread was uploaded as one secret per column at every VCP, masks consumed
        assert s.cloud.masked_input_posts == 3 * 3 * 2 * 3  # computations x parties x cols x VCPs

        # The configured output party: a signed notification per computation, then its
        # own client reads the result secrets at the VCPs.
        collaborations = data["computed_by"]["collaborations"]
        got = await s.receiver.wait(len(collaborations))
        assert {n["collaborationId"] for n in got} == set(collaborations.values())
        assert s.receiver.refused == 0
        own = CarbyneStackClient(ComputeConfig.parse(s.config), s.http, VCP_TOKEN)
        for name, cid in collaborations.items():
            (notice,) = [n for n in got if n["collaborationId"] == cid]
            assert notice["state"] == "done"
            view = (await s.http.get(f"{s.url}/v1/collaborations/{cid}")).json()
            definition = Collaboration.model_validate(
                {k: view[k] for k in Collaboration.model_fields if k in view}
                | {"deadline": None, "created_at": 0.0}
            )
            decoded = await result_of(own, definition, notice["secretIds"])
            want = plaintext(everything)[name]
            if name == "total":
                assert decoded == {"stay": want["stay"], "cost": want["cost"]}
            elif name == "mean_stay":
                assert abs(decoded["stay"] - want) <= Fraction(1, 2**15)
            else:
                assert decoded == {"stay": want}


async def test_corrupted_masks_fail_the_step_before_anything_is_posted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random()
    datasets = {name: random_rows(rng, 4) for name in ("provider", "north", "south")}
    async with setup(tmp_path, monkeypatch) as s:
        s.cloud.corrupt(1, "u")
        chain_id = await s.pdcs["origin"].start_chain(merged_chain(s, datasets))
        output = await s.pdcs["consumer"].wait_for_output(chain_id, 60)
        error = output.data["error"]
        assert error["code"] == "mpc_failed" and error["chain"] == "stays"
        assert "integrity check" in error["message"]
        assert s.cloud.masked_input_posts == 0
