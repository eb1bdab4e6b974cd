"""``ptx-chain-node demo``: a whole service chain on this machine, end to end.

Simulated PDCs (the origin provider, two additional-data providers, the MPC node's own
PDC, the consumer), the gateway on a SQLite file, and a chain whose origin and additional
data come from three employers' salary records (``examples/data``). It shows progress,
the chain's result, the same statistics computed in plaintext, and what the consumer
received; ``--json`` prints one JSON object instead. Exit code 0 when the result matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node import logs
from ptx_chain_node.summary import summarize
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

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "data"
CATALOG = "https://catalog.demo.test/v1/catalog"
PROVIDERS = ["hospital-north", "school-district", "engineering-firm"]
API_KEY_HEADER, API_KEY = "x-ptx-demo-key", "demo-key-not-for-production"


def load_rows(name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return rows


class Progress:
    """Prints steps with elapsed time (silent in --json mode)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()
        self.marks: dict[str, float] = {}

    def __call__(self, step: str, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        self.marks[step] = round(elapsed, 3)
        if not self.quiet:
            print(f"[{elapsed:6.2f}s] {message}", flush=True)


@contextlib.asynccontextmanager
async def simulated_pdc(name: str, client: httpx.AsyncClient) -> AsyncIterator[SimulatedPDC]:
    pdc = SimulatedPDC(PDCConfig(name=name, db_delay=0.05), client=client)
    async with serve(pdc, lifespan="off") as server:
        pdc.base_url = server.url
        yield pdc


def close_enough(a: Any, b: Any) -> bool:
    """Structural equality, floats within a relative 1e-9."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close_enough(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close_enough(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


async def run_demo(progress: Callable[[str, str], None], timeout: float = 60.0) -> dict[str, Any]:
    """Run the chain; return result, plaintext check, match and what the consumer got."""
    datasets = {name: load_rows(name) for name in PROVIDERS}
    with tempfile.TemporaryDirectory(prefix="ptx-demo-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
            pdcs = {
                role: await stack.enter_async_context(simulated_pdc(role, client))
                for role in ("origin", "additional", "node", "consumer")
            }
            progress(
                "pdcs",
                "simulated PDCs up: origin provider, additional-data providers, "
                "the MPC node's PDC, consumer",
            )
            settings = Settings(
                store_url=f"sqlite:///{Path(tmp) / 'gateway.db'}",
                pdc_url=pdcs["node"].base_url,
                resources=[
                    {
                        "name": "mpc",
                        "path": "/mpc/resource",
                        "target_ids": [f"{CATALOG}/serviceofferings/mpc-salaries"],
                        "auth": {"api_key_header": API_KEY_HEADER, "api_key": API_KEY},
                    }
                ],
                resume={"delay": 0.5},
                worker={"poll_interval": 0.1},
                log_level="warning",
            )
            gateway = await stack.enter_async_context(
                serve(create_app(settings, configure_logging=False))
            )
            progress("gateway", f"gateway up at {gateway.url} (store: SQLite)")

            origin = DataSource(
                offering=f"{CATALOG}/dataresources/{PROVIDERS[0]}",
                url=pdcs["origin"].serve_data(PROVIDERS[0], datasets[PROVIDERS[0]]),
                participant=Participant(name=PROVIDERS[0], id=f"participant-{PROVIDERS[0]}"),
            )
            extra = [
                DataSource(
                    offering=f"{CATALOG}/dataresources/{name}",
                    url=pdcs["additional"].serve_data(name, datasets[name]),
                    participant=Participant(
                        name=name,
                        id=f"participant-{name}",
                        connector_url=pdcs["additional"].base_url + "/",
                    ),
                )
                for name in PROVIDERS[1:]
            ]
            spec = ChainSpec(
                source=origin,
                nodes=[
                    ChainStep(
                        offering=f"{CATALOG}/serviceofferings/mpc-salaries",
                        representation=Representation(
                            url=f"{gateway.url}/mpc/resource",
                            method="apiKey",
                            api_key_header=API_KEY_HEADER,
                            api_key=API_KEY,
                            content_type="text/plain",
                        ),
                        params={"purpose": "salary-statistics"},
                        pre=extra,
                        pdc_url=pdcs["node"].base_url,
                    )
                ],
                consumer=ChainStep(
                    offering=f"{CATALOG}/serviceofferings/consumer-dashboard",
                    pdc_url=pdcs["consumer"].base_url,
                ),
            )
            chain_id = await pdcs["origin"].start_chain(spec)
            progress("chain", f"chain started: {chain_id[:40]}...")
            output = await pdcs["consumer"].wait_for_output(chain_id, timeout)
            progress("output", "consumer received the resumed result")
            jobs = await settled_jobs(client, gateway.url, timeout)
    result = output.data
    everything = [row for rows in datasets.values() for row in rows]
    plaintext = summarize(everything)
    computed = result.get("total") if isinstance(result, dict) else None
    return {
        "chainId": chain_id,
        "providers": {name: len(rows) for name, rows in datasets.items()},
        "result": computed,
        "plaintext": plaintext,
        "match": close_enough(computed, plaintext),
        "consumerReceived": output.body,
        "job": {k: jobs[0][k] for k in ("id", "state", "attempts")} if jobs else None,
    }


async def settled_jobs(client: httpx.AsyncClient, url: str, timeout: float) -> list[Any]:
    """The gateway's jobs once none is in flight (the PDC answers a resume late)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs: list[Any] = (await client.get(f"{url}/jobs")).json()["jobs"]
        settled = all(j["state"] in ("resumed", "completed", "failed") for j in jobs)
        if settled or time.monotonic() > deadline:
            return jobs
        await asyncio.sleep(0.05)


def print_report(report: dict[str, Any]) -> None:
    result, plain = report["result"] or {}, report["plaintext"]
    print("\nrows per provider:", ", ".join(f"{k}={v}" for k, v in report["providers"].items()))
    print(f"{'field':8} {'statistic':9} {'chain result':>14} {'plaintext':>14}")
    for field, stats in plain["fields"].items():
        for name in ("count", "sum", "mean", "min", "max"):
            got = result.get("fields", {}).get(field, {}).get(name)
            print(f"{field:8} {name:9} {got!s:>14.14} {stats[name]!s:>14.14}")
    print("\nconsumer received:", json.dumps(report["consumerReceived"])[:300], "...")
    print(f"job: {report['job']}")
    print("MATCH" if report["match"] else "MISMATCH")


def main(*, as_json: bool = False, timeout: float = 60.0) -> int:
    logs.configure("warning", json=False)
    progress = Progress(quiet=as_json)
    try:
        report = asyncio.run(run_demo(progress, timeout))
    except TimeoutError:
        print("demo failed: the consumer received nothing in time", file=sys.stderr)
        return 1
    report["timings"] = progress.marks
    if as_json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["match"] else 1
