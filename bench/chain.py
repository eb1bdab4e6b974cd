"""Chain benchmark: from the PDC's request to the resume received, by MPC, vs plain MPyC.

For each row count (split over 3 providers: the origin thread and two additional-data
threads), one fresh worker process runs the demo's machinery: simulated PDCs in the worker,
the gateway in a process of its own (SQLite store, ``mpc`` processor, a chain configuration
computing the mean and a 10-bin histogram of one integer column) and 3 local MPyC node
processes. Measured in that run:

- ``chain``: wall time from ``start_chain`` at the origin PDC to the consumer's output
  (the PDC's fetches of the data, the gateway's validation, sharing and uploads, the
  MPC runs on the nodes, reconstruction and the resume).
- ``mpc``: the MPC runs alone, from the coordinator's records (first ``run_started_at``
  to last ``finished_at`` of the chain's collaborations). ``chain - mpc`` is the
  gateway's (and the simulated PDCs') overhead.
- ``gateway CPU s``: the gateway process's CPU time from ready to the end of the chain;
  ``PDCs CPU s``: the worker's (the simulated PDCs', without the memory sampler's thread)
  over the chain. Both sides run on the same 2 cores, so they also slow each other down.
- ``mpyc``: ``bench/mpc_plain.py`` on the same rows (each party pre-aggregates its own
  rows, 3 processes on loopback), run right after in the same worker.

Both the gateway's ``limits.max_body_bytes`` and the simulated PDCs' ``body_limit`` (the
PDC's ``expressLimitSize``, 2 MB by default: ~150 000 rows of this data) are raised to
1 GiB here: at 10^6 rows the merged body is ~15 MB of JSON.

Peak memory: ``gateway MB`` is the gateway process's ``VmHWM``, ``PDCs MB`` the worker's
``ru_maxrss`` (the simulated PDCs, which hold every row as Python objects and JSON, and the
benchmark's own data), ``nodes MB`` the largest ``VmHWM`` of a node process or an MPyC
party it started, ``mpyc MB`` of a plain MPyC party (sampled from ``/proc``: ``ru_maxrss``
of a child forked from the big worker is inflated). Each result is checked against numpy.
``bench/chain_stages.py`` breaks the gateway's part down by stage.

    .venv/bin/python bench/chain.py                  # 10^3 .. 10^6 rows
    .venv/bin/python bench/chain.py --quick          # 10^3 and 10^4 rows
    .venv/bin/python bench/chain.py --rows 100000 --json out.json
    .venv/bin/python bench/chain.py --worker 1000000   # one size in this process (profiling)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.chain_gateway import GatewayProcess  # noqa: E402
from bench.peak_memory import PeakSampler  # noqa: E402

PROVIDERS = ["provider", "north", "south"]
EDGES = list(range(0, 10_001, 1000))
CATALOG = "https://catalog.bench.test/v1/catalog"
TARGET = f"{CATALOG}/serviceofferings/mpc"


def chain_config(path: Path) -> Path:
    """Mean and histogram of one integer column, 3 input parties."""
    config = {
        "chains": [
            {
                "name": "bench",
                "target_ids": [TARGET],
                "deadline": 3600,
                "input": {
                    "columns": [
                        {"name": "value", "path": "v", "type": "integer", "min": 0, "max": 10_000}
                    ]
                },
                "parties": [
                    {"id": "provider", "thread": "origin"},
                    {"id": "north", "participant_id": "participant-north"},
                    {"id": "south", "participant_id": "participant-south"},
                ],
                "computations": [
                    {
                        "name": "mean",
                        "program": "mean",
                        "parameters": {"columns": {"value": "value"}},
                    },
                    {
                        "name": "histogram",
                        "program": "histogram",
                        "parameters": {"columns": {"value": "value"}, "edges": EDGES},
                    },
                ],
                "result": {"key": "statistics"},
            }
        ]
    }
    target = path / "chains.json"
    target.write_text(json.dumps(config))
    return target


def make_data(rows: int, seed: int, directory: Path) -> dict[str, np.ndarray]:
    """Values in [0, 10^4) split over the providers; one .npz each for the plain MPyC run."""
    rng = np.random.default_rng(seed)
    sizes = [rows // 3 + (1 if j < rows % 3 else 0) for j in range(3)]
    data = {}
    for name, size in zip(PROVIDERS, sizes, strict=True):
        data[name] = rng.integers(0, 10_000, size, dtype=np.int64)
        np.savez(directory / f"{name}.npz", value=data[name])
    return data


def plaintext(data: dict[str, np.ndarray]) -> dict[str, Any]:
    x = np.concatenate(list(data.values()))
    counts, _ = np.histogram(x, bins=np.array(EDGES, dtype=float))
    return {"mean": float(x.mean()), "histogram": counts.tolist()}


def matches(mean: float, histogram: list[int], want: dict[str, Any]) -> bool:
    return math.isclose(mean, want["mean"], rel_tol=1e-9) and histogram == want["histogram"]


async def run_chain(data: dict[str, np.ndarray], tmp: Path, sampler: PeakSampler) -> dict[str, Any]:
    """The whole chain once: wall time, MPC time, result, CPU and memory of the gateway."""
    import httpx

    from gateway.demo import additional_sources, local_nodes
    from gateway.settings import Settings
    from ptx_chain_node.testing import (
        ChainSpec,
        ChainStep,
        DataSource,
        PDCConfig,
        Representation,
        SimulatedPDC,
        serve,
    )

    @contextlib.asynccontextmanager
    async def simulated_pdc(name: str, client: httpx.AsyncClient) -> AsyncIterator[SimulatedPDC]:
        pdc = SimulatedPDC(PDCConfig(name=name, db_delay=0.05, body_limit=1 << 30), client=client)
        async with serve(pdc, lifespan="off") as server:
            pdc.base_url = server.url
            yield pdc

    rows = {name: [{"v": int(v)} for v in values] for name, values in data.items()}
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=600))
        pdcs = {
            role: await stack.enter_async_context(simulated_pdc(role, client))
            for role in ("origin", "additional", "node", "consumer")
        }
        nodes = await stack.enter_async_context(local_nodes(tmp / "nodes"))
        nodes.run_timeout = 3600
        settings = dict(
            store_url=f"sqlite:///{tmp / 'gateway.db'}",
            pdc_url=pdcs["node"].base_url,
            resources=[
                {
                    "name": "mpc",
                    "path": "/mpc",
                    "processor": "mpc",
                    "chains": str(chain_config(tmp)),
                }
            ],
            limits={"max_body_bytes": 1 << 30},
            resume={"delay": 0.05},
            worker={"poll_interval": 0.05},
            coordination={"run_poll_interval": 0.05, "engines": []},
            mpyc=nodes.settings(Settings().mpyc).model_dump(),
            log_level="warning",
        )
        gateway = await stack.enter_async_context(GatewayProcess(settings, tmp, sampler.exclude))
        extra = additional_sources(pdcs["additional"], rows, list(PROVIDERS[1:]), CATALOG)
        spec = ChainSpec(
            source=DataSource(
                offering=f"{CATALOG}/dataresources/provider",
                url=pdcs["origin"].serve_data("provider", rows["provider"]),
            ),
            nodes=[
                ChainStep(
                    offering=TARGET,
                    representation=Representation(url=f"{gateway.url}/mpc"),
                    pre=extra,
                    pdc_url=pdcs["node"].base_url,
                )
            ],
            consumer=ChainStep(
                offering=f"{CATALOG}/serviceofferings/consumer",
                pdc_url=pdcs["consumer"].base_url,
            ),
        )
        del rows
        started, cpu = time.perf_counter(), time.process_time() - sampler.cpu_s
        chain_id = await pdcs["origin"].start_chain(spec)
        output = await pdcs["consumer"].wait_for_output(chain_id, 3600)
        seconds = time.perf_counter() - started
        pdcs_cpu = time.process_time() - sampler.cpu_s - cpu
    runs = gateway.report["runs"]
    if not runs or any(start is None or end is None for start, end, _ in runs):
        raise SystemExit(f"a collaboration did not run: {[state for _, _, state in runs]}")
    statistics = output.data["statistics"]
    return {
        "chain_s": seconds,
        "mpc_s": max(end for _, end, _ in runs) - min(start for start, _, _ in runs),
        "gateway_cpu_s": gateway.report["cpu_s"],
        "pdcs_cpu_s": pdcs_cpu,
        "gateway_mb": gateway.report["peak_mb"],
        "mean": statistics["mean"],
        "histogram": list(statistics["histogram"].values()),
        "parties": output.data.get("parties"),
    }


def run_plain(data: dict[str, np.ndarray], tmp: Path) -> dict[str, Any]:
    """``bench/mpc_plain.py`` on the same rows: seconds, result, largest party's peak RSS."""
    from bench.mpc import NO_LOG, free_ports

    output = tmp / "plain-result.json"
    job = {
        "inputs": [str(tmp / f"{name}.npz") for name in PROVIDERS],
        "sizes": [len(data[name]) for name in PROVIDERS],
        "programs": [
            {"name": "mean", "params": {}},
            {"name": "histogram", "params": {"edges": [str(e) for e in EDGES]}},
        ],
        "output": str(output),
    }
    job_path = tmp / "plain-job.json"
    job_path.write_text(json.dumps(job))
    env = {**os.environ, "BENCH_MPC_JOB": str(job_path)}
    started = time.perf_counter()
    addresses = [arg for port in free_ports(3) for arg in ("-P", f"127.0.0.1:{port}")]
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "mpc_plain.py"), "-M3", "-I", str(i), *addresses, *NO_LOG],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(3)
    ]
    with PeakSampler() as sampler:
        for process in processes:
            process.wait()
    seconds = time.perf_counter() - started
    if any(p.returncode != 0 for p in processes):
        raise SystemExit("a plain MPyC party failed")
    results = json.loads(output.read_text())["results"]
    return {
        "mpyc_s": seconds,
        "mpyc_mb": sampler.peak_mb,
        "mean": results["mean"][0],
        "histogram": results["histogram"],
    }


def worker(rows: int, seed: int) -> dict[str, Any]:
    """One row count in this (fresh) process."""
    from ptx_chain_node import logs

    logs.configure("warning", json=False)
    with tempfile.TemporaryDirectory(prefix="ptx-bench-chain-") as name:
        tmp = Path(name)
        data = make_data(rows, seed, tmp)
        want = plaintext(data)
        with PeakSampler() as sampler:
            chain = asyncio.run(run_chain(data, tmp, sampler))
        pdcs_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        nodes_mb = sampler.peak_mb
        plain = run_plain(data, tmp)
    return {
        "rows": rows,
        "chain_s": chain["chain_s"],
        "mpc_s": chain["mpc_s"],
        "mpyc_s": plain["mpyc_s"],
        "gateway_cpu_s": chain["gateway_cpu_s"],
        "pdcs_cpu_s": chain["pdcs_cpu_s"],
        "gateway_mb": chain["gateway_mb"],
        "pdcs_mb": pdcs_mb,
        "nodes_mb": nodes_mb,
        "mpyc_mb": plain["mpyc_mb"],
        "parties": chain["parties"],
        "ok": matches(chain["mean"], chain["histogram"], want)
        and matches(plain["mean"], plain["histogram"], want),
    }


def measure(rows: int, seed: int) -> dict[str, Any]:
    """:func:`worker` in a fresh process (so peak memory is this size's)."""
    with tempfile.TemporaryDirectory() as name:
        out = Path(name) / "row.json"
        command = [sys.executable, __file__, "--worker", str(rows), "--seed", str(seed)]
        done = subprocess.run([*command, "--json", str(out)], check=False)
        if done.returncode != 0:
            raise SystemExit(f"the worker for {rows} rows failed ({done.returncode})")
        row: dict[str, Any] = json.loads(out.read_text())
        return row


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| rows | chain s | mpc s | overhead s | mpyc s | chain/mpyc | gateway CPU s "
        "| PDCs CPU s | gateway MB | PDCs MB | nodes MB | mpyc MB | ok |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['rows']:,} | {r['chain_s']:.2f} | {r['mpc_s']:.2f} "
            f"| {r['chain_s'] - r['mpc_s']:.2f} | {r['mpyc_s']:.2f} "
            f"| {r['chain_s'] / r['mpyc_s']:.1f}x | {r['gateway_cpu_s']:.2f} "
            f"| {r['pdcs_cpu_s']:.2f} | {r['gateway_mb']:.0f} | {r['pdcs_mb']:.0f} "
            f"| {r['nodes_mb']:.0f} | {r['mpyc_mb']:.0f} | {'yes' if r['ok'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 rows")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        row = worker(args.worker, args.seed)
        if args.json:
            args.json.write_text(json.dumps(row))
        return 0
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.rows.split(",")]
    rows = []
    for size in sizes:
        rows.append(measure(size, args.seed))
        print(table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else table(rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
