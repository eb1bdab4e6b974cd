"""Coordinator round trips over HTTP: SQLite and PostgreSQL, throughput with p50/p99.

One round trip is a full collaboration as clients drive it: create (operator), register 3
input parties and 1 output party, confirm 3 uploads (which starts the run), read the
status. The gateway app runs under uvicorn in a thread of this process (so the bench can
share columns with the in-process ``local`` engine, as an input party's client would);
notifications go to a second uvicorn sink. Several clients run round trips concurrently.

    python bench/coordinator.py [--seconds 10] [--clients 8] [--postgres URL]

PostgreSQL runs when ``--postgres`` or ``PTX_TEST_POSTGRES_URL`` names a server (a fresh
database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node.coordination import LocalTestEngine
from ptx_chain_node.testing.server import ServerThread

OPERATOR = "bench-operator-token"
OP = {"authorization": f"Bearer {OPERATOR}"}


def sink() -> Starlette:
    async def notify(_request: Any) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[Route("/client/notify", notify, methods=["PUT"])])


async def round_trip(client: httpx.AsyncClient, engine: LocalTestEngine, notify_url: str) -> None:
    body = {
        "name": "bench",
        "program": {"name": "sum", "version": "1"},
        "input_specification": {"columns": [{"name": "v"}], "max_rows": 1000},
        "number_of_parties": 3,
        "engine": "local",
        "approval": "on_confirm",
    }
    r = await client.post("/v1/collaborations", json=body, headers=OP)
    r.raise_for_status()
    cid = r.json()["id"]
    tokens = []
    for pid in ("a", "b", "c"):
        r = await client.post(f"/v1/collaborations/{cid}/input-parties/{pid}")
        r.raise_for_status()
        tokens.append((pid, r.json()["token"]))
    r = await client.post(
        f"/v1/collaborations/{cid}/output-parties/out", json={"endpoint": notify_url}, headers=OP
    )
    r.raise_for_status()
    for i, (pid, token) in enumerate(tokens):
        secret = engine.share([i, i + 1, i + 2])
        r = await client.post(
            f"/v1/collaborations/{cid}/input-parties/{pid}/upload",
            json={"secret_ids": [secret], "rows": 3},
            headers={"authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
    r = await client.get(f"/v1/collaborations/{cid}/status")
    r.raise_for_status()


async def load(
    base: str,
    engine: LocalTestEngine,
    notify_url: str,
    seconds: float,
    clients: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=30, transport=transport
    ) as client:

        async def worker() -> None:
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await round_trip(client, engine, notify_url)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies


def report(label: str, latencies: list[float], elapsed: float, clients: int) -> None:
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"{label:<18} {len(latencies) / elapsed:7.1f} round trips/s "
        f"({len(latencies) * 9 / elapsed:6.0f} req/s)  "
        f"p50 {statistics.median(latencies) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
        f"n={len(latencies)} clients={clients}"
    )


async def in_process(app: Starlette, engine: LocalTestEngine, seconds: float, clients: int) -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        notify = "http://sink.bench/client"  # answered 204 by the app's mock transport
        started = time.perf_counter()
        latencies = await load("http://app", engine, notify, seconds, clients, transport)
        report("  in-process ASGI", latencies, time.perf_counter() - started, clients)


def run(label: str, store_url: str, seconds: float, clients: int) -> None:
    settings = Settings(
        store_url=store_url,
        operator_token=OPERATOR,
        log_level="warning",
        coordination={"sweep_interval": 1.0, "run_poll_interval": 0.05},
    )
    app = create_app(settings, configure_logging=True)
    engine = LocalTestEngine()
    app.state.runtime.coordination.use_engine(engine)
    with ServerThread(sink(), lifespan="off") as notify, ServerThread(app) as server:
        asyncio.run(load(server.url, engine, notify.url + "/client", 1.0, clients))  # warm up
        started = time.perf_counter()
        latencies = asyncio.run(load(server.url, engine, notify.url + "/client", seconds, clients))
        report(f"{label} uvicorn", latencies, time.perf_counter() - started, clients)
    # The same app without the HTTP stack: what the coordinator itself costs.
    sink_transport = httpx.MockTransport(lambda _request: httpx.Response(204))
    fresh = create_app(settings, configure_logging=False, transport=sink_transport)
    fresh.state.runtime.coordination.use_engine(engine)
    asyncio.run(in_process(fresh, engine, seconds, clients))


def postgres_database(url: str) -> tuple[str, Any]:
    import asyncpg

    name = f"ptx_bench_{uuid.uuid4().hex[:8]}"
    base = url.rpartition("/")[0]

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    return f"{base}/{name}", lambda: asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--postgres", default=os.environ.get("PTX_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    print("one round trip = create + 3 input + 1 output registrations + 3 uploads + status")
    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{tmp}/bench.db", args.seconds, args.clients)
    if args.postgres:
        url, drop = postgres_database(args.postgres)
        try:
            run("postgresql", url, args.seconds, args.clients)
        finally:
            drop()
    else:
        print("postgresql skipped (no --postgres / PTX_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
