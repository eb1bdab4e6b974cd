"""``ptx-chain-node demo``: a whole service chain on this machine, end to end, by MPC.

Simulated PDCs (the origin provider, two additional-data providers, the MPC node's own
PDC, the consumer), three local MPyC compute nodes, the gateway on a SQLite file with the
``mpc`` processor and the chain configuration ``examples/chains/salaries.toml``, and a
chain whose origin and additional data come from three employers' salary records
(``examples/data``). Each employer's thread becomes an input party whose rows are shared
and uploaded to the nodes; the nodes compute mean, variance and histogram of salary and the
count by category on shares. The demo shows progress, the MPC result next to the same
statistics recomputed in plaintext, and what the consumer received; ``--json`` prints one
JSON object instead. Exit code 0 when the results match.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.app import create_app
from gateway.local_nodes import LocalNodes
from gateway.settings import Settings
from ptx_chain_node import logs
from ptx_chain_node.chains.config import ChainConfig, load_chain_file
from ptx_chain_node.chains.records import typed_rows
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
CHAINS = Path(__file__).resolve().parent.parent / "examples" / "chains" / "salaries.toml"
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
    """Structural equality, floats within a relative 1e-9 (MPC fixed point: 2**-48)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close_enough(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close_enough(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def plaintext_statistics(config: ChainConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The configured statistics recomputed in the clear (the check of the MPC result)."""
    typed, problems = typed_rows(config.input, rows, "rows")
    assert not problems, problems
    columns = typed.columns
    out: dict[str, Any] = {}
    for computation in config.computations:
        mapping = computation.parameters.get("columns", {})
        values = [float(v) for v in columns[mapping.get("value", "value")]]
        n = len(values)
        mean = sum(values) / n
        if computation.program == "mean":
            out[computation.name] = mean
        elif computation.program == "variance":
            out[computation.name] = sum((v - mean) ** 2 for v in values) / (n - 1)
        elif computation.program == "stddev":
            out[computation.name] = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        elif computation.program == "sum":
            out[computation.name] = sum(values)
        elif computation.program == "count":
            out[computation.name] = n
        elif computation.program == "histogram":
            edges = [float(e) for e in computation.parameters["edges"]]
            counts = [
                sum(1 for v in values if lo <= v < hi or (hi == edges[-1] and v == hi))
                for lo, hi in itertools.pairwise(edges)
            ]
            names = computation.labels or [
                f"[{_edge(lo)}, {_edge(hi)}{']' if i == len(edges) - 2 else ')'}"
                for i, (lo, hi) in enumerate(itertools.pairwise(edges))
            ]
            out[computation.name] = dict(zip(names, counts, strict=True))
        else:
            raise ValueError(f"no plaintext recomputation of {computation.program}")
    return out


def _edge(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


@contextlib.asynccontextmanager
async def local_nodes(data_dir: Path) -> AsyncIterator[LocalNodes]:
    """Three MPyC node processes on this machine (one operator: no confidentiality)."""
    nodes = LocalNodes(3, data_dir, run_timeout=60, log_dir=data_dir / "logs")
    nodes.start()
    try:
        await asyncio.to_thread(nodes.wait_ready, 30.0)
        yield nodes
    finally:
        await asyncio.to_thread(nodes.stop)


def additional_sources(
    pdc: SimulatedPDC, datasets: dict[str, Any], names: list[str], catalog: str
) -> list[DataSource]:
    """Pre-chain sources served by ``pdc``: one per provider in ``names``."""
    return [
        DataSource(
            offering=f"{catalog}/dataresources/{name}",
            url=pdc.serve_data(name, datasets[name]),
            participant=Participant(
                name=name, id=f"participant-{name}", connector_url=pdc.base_url + "/"
            ),
        )
        for name in names
    ]


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
            nodes = await stack.enter_async_context(local_nodes(Path(tmp) / "nodes"))
            progress("nodes", "3 MPyC compute nodes up on 127.0.0.1 (one machine: no privacy)")
            settings = Settings(
                store_url=f"sqlite:///{Path(tmp) / 'gateway.db'}",
                pdc_url=pdcs["node"].base_url,
                resources=[
                    {
                        "name": "mpc",
                        "path": "/mpc/resource",
                        "target_ids": [f"{CATALOG}/serviceofferings/mpc-salaries"],
                        "auth": {"api_key_header": API_KEY_HEADER, "api_key": API_KEY},
                        "processor": "mpc",
                        "chains": str(CHAINS),
                    }
                ],
                resume={"delay": 0.5},
                worker={"poll_interval": 0.1},
                coordination={"run_poll_interval": 0.1, "engines": []},
                operator_token=secrets.token_urlsafe(24),
                mpyc=nodes.settings(Settings().mpyc).model_dump(),
                log_level="warning",
            )
            gateway = await stack.enter_async_context(
                serve(create_app(settings, configure_logging=False))
            )
            progress("gateway", f"gateway up at {gateway.url} (store: SQLite, processor: mpc)")

            origin = DataSource(
                offering=f"{CATALOG}/dataresources/{PROVIDERS[0]}",
                url=pdcs["origin"].serve_data(PROVIDERS[0], datasets[PROVIDERS[0]]),
                participant=Participant(name=PROVIDERS[0], id=f"participant-{PROVIDERS[0]}"),
            )
            extra = additional_sources(pdcs["additional"], datasets, PROVIDERS[1:], CATALOG)
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
    data = output.data if isinstance(output.data, dict) else {}
    computed = data.get("statistics")
    everything = [row for rows in datasets.values() for row in rows]
    plaintext = plaintext_statistics(load_chain_file(CHAINS).chains[0], everything)
    return {
        "chainId": chain_id,
        "providers": {name: len(rows) for name, rows in datasets.items()},
        "result": computed,
        "plaintext": plaintext,
        "match": close_enough(computed, plaintext),
        "parties": data.get("parties"),
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
    print("input parties (rows shared):", report["parties"])
    print(f"{'statistic':18} {'item':18} {'MPC result':>16} {'plaintext':>16}")
    for name, want in plain.items():
        got = result.get(name)
        items = want.items() if isinstance(want, dict) else [("", want)]
        for item, value in items:
            mpc = got.get(item) if isinstance(got, dict) else got
            print(f"{name:18} {item:18} {_cell(mpc):>16} {_cell(value):>16}")
    print("\nconsumer received:", json.dumps(report["consumerReceived"])[:300], "...")
    print(f"job: {report['job']}")
    print("MATCH" if report["match"] else "MISMATCH")


def _cell(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


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
