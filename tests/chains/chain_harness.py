"""Test kit for chain steps on real MPyC nodes: configurations, data, the PDC, parties.

- :func:`chain` / :func:`write_chains`: a chain configuration (sum and mean of a salary
  column; thread parties ``provider`` (origin) and ``north`` (a pre-chain source); optional
  external parties, ``min_parties``, ``deadline`` and ``on_failure``);
- :class:`World`: one simulated PDC under uvicorn hosting the whole chain (source, the
  pre-chain source of ``north``, the MPC step, the consumer) and an HTTP client;
- :func:`gateway_settings`: the gateway's settings for these nodes (in-process app or a
  ``ptx-chain-node serve`` process, whose config file is JSON);
- :func:`join_as_external`: an external input party joining over the coordinator API and
  uploading with the client code path (``ptx-chain-node client upload`` or its library
  function), as it would from its own machine;
- :func:`local_nodes`: three real MPyC node processes, ready, stopped on exit;
- :func:`wait_for`: a bounded wait on a condition.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node.chains.config import ChainConfig, load_chain_file
from ptx_chain_node.chains.processor import collaboration_id
from ptx_chain_node.job import job_id_for
from ptx_chain_node.mpc.upload import upload_file
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

CATALOG = "https://catalog.test/v1/catalog"
CONSUMER = f"{CATALOG}/serviceofferings/consumer"
NORTH = Participant(name="North", id="participant-north")
MAX_SALARY = 200_000

T = TypeVar("T")


def target(name: str) -> str:
    """The service offering (``x-ptx-target-id``) of the chain configuration ``name``."""
    return f"{CATALOG}/serviceofferings/mpc-{name}"


def chain(
    name: str,
    *,
    external: tuple[str, ...] = (),
    min_parties: int | None = None,
    deadline: float = 60.0,
    on_failure: str = "fail",
    mean: bool = False,
) -> dict[str, Any]:
    """One chain configuration: ``sum`` (and ``mean``) of ``salary`` over the parties."""
    salary = {"columns": {"value": "salary"}, "min_group_size": 1}
    computations = [{"name": "total", "program": "sum", "parameters": salary}]
    if mean:
        computations.append({"name": "mean", "program": "mean", "parameters": salary})
    config: dict[str, Any] = {
        "name": name,
        "target_ids": [target(name)],
        "deadline": deadline,
        "on_failure": on_failure,
        "input": {
            "records": "rows",
            "columns": [
                {"name": "salary", "path": "pay", "type": "integer", "min": 0, "max": MAX_SALARY}
            ],
        },
        "parties": [
            {"id": "provider", "thread": "origin"},
            {"id": "north", "participant_id": NORTH.id},
        ],
        "external_parties": [
            {"id": p, "identity": f"{CATALOG}/participants/{p}"} for p in external
        ],
        "computations": computations,
        "result": {"key": "statistics", "params": {"purpose": "test"}},
    }
    if min_parties is not None:
        config["min_parties"] = min_parties
    return config


def write_chains(path: Path, *chains: dict[str, Any]) -> Path:
    """A chain configuration file (JSON) holding ``chains``."""
    path.write_text(json.dumps({"chains": list(chains)}))
    return path


def chain_config(path: Path, name: str) -> ChainConfig:
    """The loaded configuration ``name`` of the chain file at ``path``."""
    return next(c for c in load_chain_file(path).chains if c.name == name)


def random_rows(rng: random.Random, count: int) -> list[dict[str, int]]:
    """``count`` records ``{"pay": salary}`` with random salaries."""
    return [{"pay": rng.randrange(0, MAX_SALARY + 1)} for _ in range(count)]


def salaries(*datasets: list[dict[str, int]]) -> list[int]:
    """Every salary of the given datasets (the plaintext side of a check)."""
    return [row["pay"] for rows in datasets for row in rows]


def gateway_settings(
    nodes: LocalNodes, store: Path, chains: Path, pdc_url: str, **overrides: Any
) -> dict[str, Any]:
    """Settings of a gateway with an ``mpc`` resource at ``/mpc`` on ``nodes`` (no own nodes)."""
    mpyc = nodes.settings(Settings().mpyc).model_dump(mode="json")
    mpyc["token_secret"] = nodes.token_secret
    mpyc["local_nodes"] = 0
    settings: dict[str, Any] = {
        "store_url": f"sqlite:///{store}",
        "pdc_url": pdc_url,
        "resources": [{"name": "mpc", "path": "/mpc", "processor": "mpc", "chains": str(chains)}],
        "resume": {"delay": 0.2, "backoff_initial": 0.05, "backoff_max": 0.2},
        "worker": {"poll_interval": 0.05},
        "coordination": {"run_poll_interval": 0.1, "sweep_interval": 0.25},
        "mpyc": mpyc,
        "log_level": "warning",
        "log_json": True,
    }
    for key, value in overrides.items():
        settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
    return settings


@contextmanager
def local_nodes(workdir: Path) -> Iterator[LocalNodes]:
    """Three real MPyC node processes under ``workdir``, ready; stopped on exit."""
    cluster = LocalNodes(3, workdir, run_timeout=30)
    cluster.start()
    try:
        cluster.wait_ready(30.0)
        yield cluster
    finally:
        cluster.stop()


async def wait_for(
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, every: float = 0.05
) -> T:
    """The first truthy value of ``check()``, polled every ``every`` s; AssertionError after."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(every)


@dataclass
class World:
    """One simulated PDC hosting a whole chain, and the test's HTTP client."""

    pdc: SimulatedPDC
    http: httpx.AsyncClient

    def spec(
        self, gateway_url: str, name: str, provider: list[dict[str, int]], north: list[Any]
    ) -> ChainSpec:
        """source (provider) -> MPC step at the gateway (pre-chain: north) -> consumer."""
        north_url = self.pdc.serve_data(f"north-{len(self.pdc.served_data)}", {"rows": north})
        return ChainSpec(
            source=DataSource(
                offering=f"{CATALOG}/dataresources/provider", data={"rows": provider}
            ),
            nodes=[
                ChainStep(
                    offering=target(name),
                    representation=Representation(url=f"{gateway_url}/mpc"),
                    params={"purpose": "payroll"},
                    pre=[
                        DataSource(
                            offering=f"{CATALOG}/dataresources/north",
                            url=north_url,
                            participant=NORTH,
                        )
                    ],
                )
            ],
            consumer=ChainStep(offering=CONSUMER),
        )

    async def start(
        self, gateway_url: str, name: str, provider: list[dict[str, int]], north: list[Any]
    ) -> str:
        """Start the chain; returns its id once the gateway acknowledged the MPC step."""
        return await self.pdc.start_chain(self.spec(gateway_url, name, provider, north))

    async def job(self, gateway_url: str, chain_id: str, name: str) -> dict[str, Any] | None:
        """The gateway's job of the MPC step of ``chain_id`` (None while there is none)."""
        answer = await self.http.get(f"{gateway_url}/jobs/{job_id_for(chain_id, target(name))}")
        return dict(answer.json()) if answer.status_code == 200 else None

    async def job_in(
        self, gateway_url: str, chain_id: str, name: str, *states: str, timeout: float = 60
    ) -> dict[str, Any]:
        """The job, once it is in one of ``states``."""

        async def check() -> dict[str, Any] | None:
            job = await self.job(gateway_url, chain_id, name)
            return job if job is not None and job["state"] in states else None

        return await wait_for(check, timeout, f"job of {name} in {states}")


@asynccontextmanager
async def world() -> AsyncIterator[World]:
    """A :class:`World`: the PDC served on 127.0.0.1 in this event loop."""
    async with httpx.AsyncClient(timeout=30) as http:
        pdc = SimulatedPDC(PDCConfig(name="pdc", db_delay=0.01), client=http)
        async with serve(pdc, lifespan="off") as server:
            pdc.base_url = server.url
            try:
                yield World(pdc, http)
            finally:
                await pdc.aclose()


async def collaboration_of(
    http: httpx.AsyncClient, gateway_url: str, config: ChainConfig, chain_id: str, computation: str
) -> dict[str, Any]:
    """The collaboration of ``computation`` of the chain step, once the step created it.

    Its id is derived from (configuration, chainId, computation), which the configuration's
    participants know; it appears when the gateway received the step.
    """
    found = next(c for c in config.computations if c.name == computation)
    cid = collaboration_id(config, chain_id, found)

    async def check() -> dict[str, Any] | None:
        answer = await http.get(f"{gateway_url}/v1/collaborations/{cid}")
        return dict(answer.json()) if answer.status_code == 200 else None

    return await wait_for(check, 30, f"collaboration {cid}")


async def join_as_external(
    http: httpx.AsyncClient,
    gateway_url: str,
    config: ChainConfig,
    chain_id: str,
    party: str,
    rows: list[dict[str, int]],
    workdir: Path,
    *,
    cli: bool = False,
) -> dict[str, dict[str, Any]]:
    """An external party registers in each collaboration of the step and uploads its rows.

    Registration is ``POST /v1/collaborations/{cid}/input-parties/{party}`` (open to the
    configured external parties; the answer carries the party's token once); the upload is
    ``ptx-chain-node client upload --approve`` (``cli``) or :func:`upload_file`, which the
    command runs. Returns the upload receipt per computation.
    """
    path = workdir / f"{party}.json"
    path.write_text(json.dumps([{"salary": row["pay"]} for row in rows]))
    receipts: dict[str, dict[str, Any]] = {}
    for computation in config.computations:
        collaboration = await collaboration_of(
            http, gateway_url, config, chain_id, computation.name
        )
        cid = collaboration["id"]
        answer = await http.post(f"{gateway_url}/v1/collaborations/{cid}/input-parties/{party}")
        assert answer.status_code == 201, answer.text
        token = answer.json()["token"]
        if cli:
            receipts[computation.name] = await client_upload(gateway_url, cid, party, token, path)
        else:
            receipts[computation.name] = await upload_file(
                gateway_url, cid, party, token, path, approve=True
            )
    return receipts


async def client_upload(
    coordinator: str, cid: str, party: str, token: str, path: Path
) -> dict[str, Any]:
    """``ptx-chain-node client upload --approve`` as a subprocess; its JSON receipt."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "client",
        "upload",
        "--coordinator",
        coordinator,
        "--collaboration",
        cid,
        "--party",
        party,
        "--token",
        token,
        "--approve",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (out.decode(), err.decode())
    receipt: dict[str, Any] = json.loads(out)
    return receipt
