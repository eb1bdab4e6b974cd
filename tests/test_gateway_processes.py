"""The gateway as real processes: SIGKILL storms, PDC outages, load, two replicas.

Each test runs ``ptx-chain-node serve`` as a subprocess (config file in ``tmp_path``) and a
simulated PDC under a real uvicorn in the test's event loop, and talks to both over HTTP
on 127.0.0.1. Deliveries are the PDC's own chain calls (``SimulatedPDC.start_chain``) or,
where a delivery must be retried or repeated, PDC-shaped requests built with the same wire
functions (mixed-case ``x-ptx-*`` headers, ``text/plain`` JSON, joined params).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from processes import GatewayProcess, write_config

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.job import job_id_for
from ptx_chain_node.testing import (
    LiveServer,
    PDCConfig,
    ResumeOutcome,
    SimulatedPDC,
    new_chain_id,
    simple_chain,
)
from ptx_chain_node.testing.chainspec import Representation
from ptx_chain_node.testing.wire import pdc_headers, resource_body

pytestmark = pytest.mark.slow

CONTRACT = "https://contract.test/contracts/64f1c2a9e7b3d5f0a1b2c3d4"
NEXT = "https://catalog.test/v1/catalog/serviceofferings/consumer"
#: Two offerings of this node; odd characters so "byte for byte" means something.
TARGETS = (
    "https://catalog.test/v1/catalog/serviceofferings/MPC-Sum/?v=1&x=a%20b",
    "https://Catalog.test/v1/catalog/serviceofferings/mpc-count#frag",
)
REPRESENTATION = Representation(url="http://gateway.invalid/resource")


# --------------------------------------------------------------------------- helpers
def expected_value_stats(values: list[int]) -> dict[str, Any]:
    """Plaintext recomputation of the summary processor's statistics of ``value``."""
    return {
        "count": len(values),
        "sum": sum(values),
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": max(values),
    }


def check_summary(data: Any, values: list[int]) -> None:
    assert data["total"]["records"] == len(values)
    assert data["total"]["fields"]["value"] == expected_value_stats(values)


@dataclass(frozen=True)
class Step:
    """One chain step as the PDC delivers it: the headers and body it puts on the wire."""

    chain_id: str
    target_id: str
    values: tuple[int, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.chain_id, self.target_id)

    @property
    def job_id(self) -> str:
        return job_id_for(self.chain_id, self.target_id)

    def headers(self) -> dict[str, str]:
        context = ChainContext(
            chain_id=self.chain_id,
            target_id=self.target_id,
            next_target=NEXT,
            data_exchange_id="6650f1a2b3c4d5e6f7a8b9c0",
            contract_id="64f1c2a9e7b3d5f0a1b2c3d4",
            contract_url=CONTRACT,
            incoming_connector_uri="http://consumer.pdc.test/",
        )
        return pdc_headers(context, REPRESENTATION)

    def body(self) -> bytes:
        rows = [{"id": i, "value": v} for i, v in enumerate(self.values)]
        document = resource_body(rows, CONTRACT, "", REPRESENTATION)
        return json.dumps(document).encode()


def make_steps(chains: int, rng: random.Random) -> list[Step]:
    """``chains`` chains, each reaching this node twice (two offerings): 2 x chains steps."""
    steps = []
    for _ in range(chains):
        chain_id = new_chain_id()
        for target in TARGETS:
            values = tuple(rng.randint(-1000, 1000) for _ in range(rng.randint(1, 6)))
            steps.append(Step(chain_id, target, values))
    return steps


async def post_step(client: httpx.AsyncClient, url: str, step: Step) -> httpx.Response | None:
    """One delivery; None when the gateway could not be reached or the call broke off."""
    try:
        return await client.post(url + "/resource", content=step.body(), headers=step.headers())
    except httpx.TransportError:
        return None


async def all_jobs(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """GET /jobs, every page."""
    jobs: list[dict[str, Any]] = []
    while True:
        response = await client.get(url + "/jobs", params={"limit": 100, "offset": len(jobs)})
        assert response.status_code == 200, response.text
        page = response.json()["jobs"]
        jobs.extend(page)
        if len(page) < 100:
            return jobs


async def get_job(client: httpx.AsyncClient, url: str, job_id: str) -> dict[str, Any]:
    response = await client.get(f"{url}/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_job(
    client: httpx.AsyncClient,
    url: str,
    job_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = await get_job(client, url, job_id)
        if until(job):
            return job
        await asyncio.sleep(0.03)
    raise AssertionError(f"job {job_id} never got there; last seen {job}")


class SlowResume:
    """ASGI wrapper: the PDC handles a resume at once but answers ``delay`` seconds later.

    The real PDC answers a resume only after re-running the node and handing the data on,
    so the "resume in flight" window is wide in production; this widens it here too.
    """

    def __init__(self, app: Any, delay: float) -> None:
        self.app = app
        self.delay = delay

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/service-chain/resume":
            await self.app(scope, receive, send)
            return

        async def late_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, late_send)


@dataclass
class LivePDC:
    pdc: SimulatedPDC
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
async def live_pdc() -> AsyncIterator[Callable[..., Any]]:
    """Factory of simulated PDCs under uvicorn in this loop: ``await live_pdc(resume_delay=)``."""
    made: list[LivePDC] = []

    async def make(resume_delay: float = 0.0) -> LivePDC:
        pdc = SimulatedPDC(PDCConfig(db_delay=0.02))
        app = SlowResume(pdc, resume_delay) if resume_delay else pdc
        server = LiveServer(app, lifespan="off")
        await server.start()
        pdc.base_url = server.url
        live = LivePDC(pdc, server)
        made.append(live)
        return live

    yield make
    for live in reversed(made):
        await live.pdc.aclose()
        await live.server.stop()


@dataclass
class Gateways:
    tmp_path: Path
    made: list[GatewayProcess] = field(default_factory=list)

    def make(self, name: str, *, store_url: str, pdc_url: str, **overrides: Any) -> GatewayProcess:
        settings: dict[str, Any] = {
            "pdc_url": pdc_url,
            "store_url": store_url,
            "log_level": "info",
            "log_json": True,
            "resume": {"delay": 0.2, "backoff_initial": 0.05, "backoff_max": 0.2},
            "worker": {"poll_interval": 0.05},
        }
        for key, value in overrides.items():
            if isinstance(value, dict):
                settings[key] = {**settings.get(key, {}), **value}
            else:
                settings[key] = value
        config = write_config(self.tmp_path / f"{name}.toml", settings)
        gateway = GatewayProcess(config, self.tmp_path / f"{name}.log")
        self.made.append(gateway)
        return gateway


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Gateways]:
    """Gateway processes of one test; all of them are killed at the end, whatever happened."""
    holder = Gateways(tmp_path)
    yield holder
    for gateway in holder.made:
        gateway.kill_now()


def resumes_by_step(pdc: SimulatedPDC) -> dict[tuple[str | None, str | None], list[Any]]:
    grouped: dict[tuple[str | None, str | None], list[Any]] = defaultdict(list)
    for record in pdc.resumes:
        grouped[(record.chain_id, record.target_id)].append(record)
    return grouped


# --------------------------------------------------------------------------- 1. SIGKILL
KILLS = 20
CHAINS_UNDER_KILLS = 30  # x 2 offerings = 60 chain steps
SPACING = 0.25  # seconds between the first deliveries of consecutive steps


async def test_sigkill_twenty_times_loses_no_acknowledged_step(
    tmp_path: Path, gateways: Gateways, live_pdc: Callable[..., Any]
) -> None:
    """60 chain steps delivered over 20 SIGKILLs (and 4 graceful restarts) on SQLite.

    Refused deliveries are retried, as the PDC would. Every acknowledged step ends
    ``resumed`` with its result; any second resume of a step was preceded by a durable
    attempt and has a SIGKILL between it and the first (the documented window).
    """
    rng = random.Random()
    live: LivePDC = await live_pdc(resume_delay=0.1)
    # Leases far longer than the test: only their release at start-up can free the jobs
    # a killed process held (SQLite: one process owns the file).
    gateway = gateways.make(
        "kill",
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        pdc_url=live.url,
        worker={"lease_seconds": 600},
    )
    await gateway.start_ready()  # the store exists before the storm
    steps = make_steps(CHAINS_UNDER_KILLS, rng)
    acks: dict[tuple[str, str], list[str]] = defaultdict(list)
    refused: Counter[str] = Counter()
    kill_times: list[float] = []
    graceful: list[float] = []

    async def deliver(client: httpx.AsyncClient, index: int, step: Step) -> None:
        await asyncio.sleep(index * SPACING)
        while not acks[step.key]:
            response = await post_step(client, gateway.url, step)
            if response is None or response.status_code == 503:
                refused["down" if response is None else "503"] += 1
                await asyncio.sleep(0.2)  # the PDC calls again
                continue
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "ACK"
            acks[step.key].append(response.json()["jobId"])

    async def storm() -> None:
        for number in range(KILLS):
            if number:
                gateway.start()
            if rng.random() < 0.25:
                await asyncio.sleep(rng.uniform(0.0, 0.6))  # maybe still starting up
            else:
                await gateway.wait_ready()
                await asyncio.sleep(rng.uniform(0.0, 0.5))
            kill_times.append(time.monotonic())
            await gateway.kill()
            if number % 5 == 4:
                # Now and then a graceful restart (SIGTERM): it may not cause a duplicate.
                gateway.start()
                await gateway.wait_ready()
                await asyncio.sleep(rng.uniform(0.0, 0.5))
                assert await gateway.stop() in (0, -signal.SIGTERM)
                graceful.append(time.monotonic())
        gateway.start()

    async with httpx.AsyncClient(timeout=5.0) as client:
        async with asyncio.timeout(240):  # a bound only: ~20 s unloaded, ~110 s at load 8
            await asyncio.gather(
                storm(), *(deliver(client, i, step) for i, step in enumerate(steps))
            )
        # The last process runs undisturbed until every acknowledged step is resumed.
        await gateway.wait_ready()
        wanted = {step.key for step in steps}
        async with asyncio.timeout(60):
            while not wanted <= set(resumes_by_step(live.pdc)):
                await asyncio.sleep(0.05)
            while any(job["state"] != "resumed" for job in await all_jobs(client, gateway.url)):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a late duplicate would show up here
        jobs = {job["id"]: job for job in await all_jobs(client, gateway.url)}

    assert gateway.kills == KILLS
    # Every step was acknowledged with its deterministic job id, and is one job.
    assert set(acks) == wanted
    for step in steps:
        assert set(acks[step.key]) == {step.job_id}
    assert set(jobs) == {step.job_id for step in steps}
    assert {job["state"] for job in jobs.values()} == {"resumed"}

    # A resume request cut off by SIGKILL reaches the simulated PDC without its body (it
    # logs a 400); the real PDC's body parser drops such a request. Only kills make them.
    broken = [r for r in live.pdc.resumes if r.outcome is ResumeOutcome.BAD_REQUEST]
    assert len(broken) <= KILLS
    for record in broken:
        assert any(abs(record.at - t) <= 1.0 for t in kill_times), (record, kill_times)
    live.pdc.resumes = [r for r in live.pdc.resumes if r not in broken]

    # Every resume is one of ours, echoes chainId/targetId exactly, and carries the result.
    by_step = resumes_by_step(live.pdc)
    assert set(by_step) == wanted, "a resume named a chain step that was never delivered"
    values = {step.key: list(step.values) for step in steps}
    for key, records in by_step.items():
        for record in records:
            assert (record.chain_id, record.target_id) == key
            check_summary(record.data, values[key])  # type: ignore[index]
            assert record.params == {"processor": "summary"}
        job = jobs[job_id_for(*key)]  # type: ignore[arg-type]
        assert (job["chainId"], job["targetId"]) == key
        # No resume leaves without a durable "resuming" (an attempt) before it.
        assert len(records) <= job["attempts"], (key, len(records), job)

    # A duplicate comes only from a resume in flight when a process was SIGKILLed: between
    # two resumes of one step there is a kill (the PDC logs a resume when it handles it,
    # possibly a little after the dying process sent it, hence the slack). A graceful
    # restart comes at least 0.6 s after the kill before it, so it is not covered.
    duplicates = 0
    for key, records in by_step.items():
        for first, second in itertools.pairwise(records):
            duplicates += 1
            assert any(first.at - 0.5 <= t <= second.at for t in kill_times), (
                key,
                first.at,
                second.at,
                kill_times,
            )
    total_attempts = sum(job["attempts"] for job in jobs.values())
    print(
        f"\n{len(steps)} steps, {KILLS} kills, {len(graceful)} graceful restarts, "
        f"{sum(refused.values())} deliveries refused "
        f"{dict(refused)}, {duplicates} duplicate resumes, {len(broken)} cut off, "
        f"{total_attempts} resume attempts"
    )


# --------------------------------------------------------------------------- 1b. start-up
async def test_first_start_interrupted_mid_migration_leaves_a_startable_store(
    tmp_path: Path, gateways: Gateways
) -> None:
    """A first start that dies between two DDL statements must not brick the store.

    The interruption is made deterministic: a table squats on the name of the jobs index,
    so the first migration fails after ``CREATE TABLE jobs`` (as a SIGKILL there would
    stop it). Once the squatter is gone, the next start must migrate and serve.
    """
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE ix_jobs_state_not_before (x INTEGER)")
    conn.close()
    gateway = gateways.make("mig", store_url=f"sqlite:///{path}", pdc_url="http://127.0.0.1:9")
    gateway.start()
    with pytest.raises(RuntimeError, match="exited during start-up"):
        await gateway.wait_ready()
    await gateway.kill()  # reap it
    with sqlite3.connect(path) as conn:
        # Nothing of the failed migration is left behind.
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert tables == {"ix_jobs_state_not_before"}, tables
        conn.execute("DROP TABLE ix_jobs_state_not_before")
    conn.close()
    await gateway.start_ready()
    async with httpx.AsyncClient(timeout=5.0) as client:
        step = make_steps(1, random.Random(7))[0]
        response = await post_step(client, gateway.url, step)
        assert response is not None and response.status_code == 200, response


# --------------------------------------------------------------------------- 2. PDC down
async def test_pdc_down_then_back_resumes_exactly_once(
    tmp_path: Path, gateways: Gateways, live_pdc: Callable[..., Any]
) -> None:
    live: LivePDC = await live_pdc()
    gateway = gateways.make(
        "down", store_url=f"sqlite:///{tmp_path / 'store.db'}", pdc_url=live.url
    )
    await gateway.start_ready()
    await live.server.stop()  # connection refused from now on; the PDC still calls out
    spec = simple_chain(gateway.url + "/resource", data=[{"id": 1, "value": 7}, {"value": 35}])
    chain_id = await live.pdc.start_chain(spec)
    call = live.pdc.calls_for(chain_id)[0]
    assert call.status == 200 and call.response["status"] == "ACK"
    job_id = call.response["jobId"]
    async with httpx.AsyncClient(timeout=5.0) as client:
        during = await wait_job(
            client,
            gateway.url,
            job_id,
            lambda j: j["attempts"] >= 2 and j["lastError"] is not None,
            timeout=20,
        )
        assert during["state"] == "resuming"
        assert "ConnectError" in during["lastError"]
        await asyncio.sleep(2.0)
        assert live.pdc.resumes_for(chain_id) == []
        await live.server.start()  # same port
        done = await wait_job(
            client, gateway.url, job_id, lambda j: j["state"] in ("failed", "resumed"), timeout=20
        )
        output = await live.pdc.wait_for_output(chain_id, timeout=10)
        await asyncio.sleep(0.5)  # nothing more may arrive
    assert done["state"] == "resumed"
    assert done["attempts"] > during["attempts"] >= 2
    assert "ConnectError" in done["lastError"]  # the last failure stays visible
    assert [r.outcome for r in live.pdc.resumes_for(chain_id)] == [ResumeOutcome.RESUMED]
    check_summary(output.data, [7, 35])
    assert live.pdc.duplicates == []


# --------------------------------------------------------------------------- 3. 500s
async def test_pdc_answering_500_until_the_deadline_fails_the_job(
    tmp_path: Path, gateways: Gateways, live_pdc: Callable[..., Any]
) -> None:
    live: LivePDC = await live_pdc()
    gateway = gateways.make(
        "500",
        store_url=f"sqlite:///{tmp_path / 'store.db'}",
        pdc_url=live.url,
        resume={"deadline": 1.5},
    )
    await gateway.start_ready()
    spec = simple_chain(gateway.url + "/resource", data=[{"value": 1}])
    chain_id = await live.pdc.start_chain(spec)
    job_id = live.pdc.calls_for(chain_id)[0].response["jobId"]
    live.pdc.restart()  # the PDC lost its in-memory chain: every resume answers 500
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5.0) as client:
        job = await wait_job(
            client,
            gateway.url,
            job_id,
            lambda j: j["state"] in ("failed", "resumed", "held"),
            timeout=15,
        )
    elapsed = time.monotonic() - started
    assert job["state"] == "failed"
    assert "deadline" in job["lastError"] and "500" in job["lastError"], job["lastError"]
    assert job["attempts"] >= 2
    assert 1.5 <= elapsed < 10
    records = live.pdc.resumes_for(chain_id)
    assert len(records) == job["attempts"]
    assert {(r.outcome, r.status) for r in records} == {(ResumeOutcome.ERROR, 500)}
    assert live.pdc.outputs == []


# --------------------------------------------------------------------------- 4. load
DISTINCT = 250


async def test_500_concurrent_deliveries_with_duplicates(
    tmp_path: Path, gateways: Gateways, live_pdc: Callable[..., Any]
) -> None:
    rng = random.Random()
    live: LivePDC = await live_pdc()
    gateway = gateways.make(
        "load", store_url=f"sqlite:///{tmp_path / 'store.db'}", pdc_url=live.url
    )
    await gateway.start_ready()
    steps = make_steps(DISTINCT // 2, rng)
    deliveries = steps + steps
    rng.shuffle(deliveries)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        started = time.monotonic()
        async with asyncio.timeout(120):
            answers = await asyncio.gather(
                *(post_step(client, gateway.url, step) for step in deliveries)
            )
        ack_seconds = time.monotonic() - started
        ids: dict[tuple[str, str], set[str]] = defaultdict(set)
        for step, response in zip(deliveries, answers, strict=True):
            assert response is not None and response.status_code == 200
            assert response.json()["status"] == "ACK"
            ids[step.key].add(response.json()["jobId"])
        assert len(ids) == DISTINCT
        assert all(found == {step.job_id} for step in steps for found in [ids[step.key]])

        async with asyncio.timeout(120):
            while True:
                jobs = await all_jobs(client, gateway.url)
                if len(jobs) == DISTINCT and all(j["state"] == "resumed" for j in jobs):
                    break
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a late duplicate would show up here
        jobs = await all_jobs(client, gateway.url)
    assert sorted(j["id"] for j in jobs) == sorted(step.job_id for step in steps)
    assert {j["attempts"] for j in jobs} == {1}
    by_step = resumes_by_step(live.pdc)
    assert set(by_step) == {step.key for step in steps}
    assert {len(records) for records in by_step.values()} == {1}
    for step in steps:
        check_summary(by_step[step.key][0].data, list(step.values))
    print(f"\n{len(deliveries)} deliveries acknowledged in {ack_seconds:.2f} s")


# --------------------------------------------------------------------------- 5. replicas
async def _fresh_schema(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


REPLICA_CHAINS = 40


@pytest.mark.postgres
async def test_two_gateways_on_one_postgres_process_each_step_once(
    postgres_url: str, gateways: Gateways, live_pdc: Callable[..., Any]
) -> None:
    await _fresh_schema(postgres_url)
    live: LivePDC = await live_pdc()
    a = gateways.make("a", store_url=postgres_url, pdc_url=live.url, resume={"delay": 0.3})
    b = gateways.make("b", store_url=postgres_url, pdc_url=live.url, resume={"delay": 0.3})
    a.start()
    b.start()  # both migrate the same fresh database at once
    await asyncio.gather(a.wait_ready(), b.wait_ready())

    rng = random.Random()
    values = [
        [rng.randint(0, 10_000) for _ in range(rng.randint(1, 8))] for _ in range(REPLICA_CHAINS)
    ]
    specs = [
        simple_chain(
            (a if i % 2 == 0 else b).url + "/resource",
            data=[{"id": j, "value": v} for j, v in enumerate(values[i])],
        )
        for i in range(REPLICA_CHAINS)
    ]
    async with asyncio.timeout(60):
        chain_ids = await asyncio.gather(*(live.pdc.start_chain(spec) for spec in specs))
    # Every fourth chain step reaches the other replica as well (a repeated delivery).
    async with httpx.AsyncClient(timeout=10.0) as client:
        for i in range(0, REPLICA_CHAINS, 4):
            call = live.pdc.calls_for(chain_ids[i])[0]
            other = b if i % 2 == 0 else a
            again = await client.post(
                other.url + "/resource", content=call.raw_body, headers=call.headers
            )
            assert again.json() == call.response  # same ACK, same job id
        async with asyncio.timeout(60):
            for chain_id in chain_ids:
                await live.pdc.wait_for_output(chain_id, timeout=60)
        await asyncio.sleep(0.5)  # a late duplicate would show up here
        jobs = await all_jobs(client, a.url)
    for gateway in (a, b):
        # uvicorn re-raises the SIGTERM it handled, after a clean shutdown.
        assert await gateway.stop() in (0, -signal.SIGTERM)
        assert gateway.lines()[-1]["event"] == "gateway stopped"

    job_ids = {live.pdc.calls_for(c)[0].response["jobId"] for c in chain_ids}
    assert len(job_ids) == REPLICA_CHAINS
    assert {j["id"] for j in jobs} == job_ids
    assert {j["state"] for j in jobs} == {"resumed"}
    assert {j["attempts"] for j in jobs} == {1}
    for i, chain_id in enumerate(chain_ids):
        assert [r.outcome for r in live.pdc.resumes_for(chain_id)] == [ResumeOutcome.RESUMED]
        outputs = [o for o in live.pdc.outputs if o.chain_id == chain_id]
        assert len(outputs) == 1
        check_summary(outputs[0].data, values[i])
    assert live.pdc.duplicates == []

    # Per process: which jobs it processed ("result ready") and resumed ("resumed").
    def events(gateway: GatewayProcess, name: str) -> list[str]:
        return [line["job_id"] for line in gateway.lines() if line.get("event") == name]

    processed = {g: events(g, "result ready") for g in (a, b)}
    resumed = {g: events(g, "resumed") for g in (a, b)}
    for per_process in (processed, resumed):
        both = per_process[a] + per_process[b]
        assert sorted(both) == sorted(job_ids), "a job was handled twice or never"
        assert not set(per_process[a]) & set(per_process[b])
    acked_by = Counter(c.url.split("/resource")[0] for c in live.pdc.resource_calls)
    assert acked_by == {a.url: REPLICA_CHAINS // 2, b.url: REPLICA_CHAINS // 2}
    assert {c.status for c in live.pdc.resource_calls} == {200}
    print(
        f"\nprocessed: a={len(processed[a])} b={len(processed[b])}; "
        f"resumed: a={len(resumed[a])} b={len(resumed[b])}"
    )


LEASE = 1.5


@pytest.mark.postgres
async def test_replica_killed_mid_resume_its_leases_lapse_and_the_other_takes_over(
    postgres_url: str, gateways: Gateways, live_pdc: Callable[..., Any]
) -> None:
    """PostgreSQL: a dead replica's jobs wait for their lease, then the survivor resumes them.

    The PDC answers resumes after 3 s, so at the kill every job is ``resuming``. The jobs
    of the killed replica are re-sent by the survivor (the documented duplicate window),
    but not before their lease ran out; the survivor's own jobs are resumed once.
    """
    await _fresh_schema(postgres_url)
    live: LivePDC = await live_pdc(resume_delay=3.0)
    settings: dict[str, Any] = {
        "store_url": postgres_url,
        "pdc_url": live.url,
        "worker": {"lease_seconds": LEASE},
    }
    a = gateways.make("a", **settings)
    b = gateways.make("b", **settings)
    await a.start_ready()
    await b.start_ready()
    steps = make_steps(8, random.Random())
    async with httpx.AsyncClient(timeout=10.0) as client:
        for i, step in enumerate(steps):
            response = await post_step(client, (a if i % 2 == 0 else b).url, step)
            assert response is not None and response.status_code == 200
        async with asyncio.timeout(20):
            while len(live.pdc.resumes) < len(steps):  # every resume is in flight
                await asyncio.sleep(0.02)
        killed_at = time.monotonic()
        await a.kill()
        async with asyncio.timeout(40):
            while any(j["state"] != "resumed" for j in await all_jobs(client, b.url)):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        jobs = {j["id"]: j for j in await all_jobs(client, b.url)}

    by_step = resumes_by_step(live.pdc)
    assert set(by_step) == {step.key for step in steps}
    taken_over = [key for key, records in by_step.items() if len(records) > 1]
    assert taken_over, "the killed replica held no job"
    resumed_by_b = [line["job_id"] for line in b.lines() if line.get("event") == "resumed"]
    assert sorted(resumed_by_b) == sorted(jobs)  # the survivor finished every job
    for key, records in by_step.items():
        job = jobs[job_id_for(*key)]  # type: ignore[arg-type]
        assert job["state"] == "resumed"
        assert len(records) == job["attempts"] <= 2
        if len(records) == 2:
            # Renewed every lease/3, so the lease ran at least 2/3 of it past the kill.
            assert records[1].at - killed_at >= LEASE * 2 / 3 - 0.1, (records, killed_at)
            assert records[1].data == records[0].data
    print(f"\n{len(taken_over)} of {len(steps)} jobs taken over after the lease")
