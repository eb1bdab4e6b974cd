"""MPC benchmark: our engine vs a plain MPyC script vs plaintext numpy, 3 input parties, 3 nodes.

For each row count (split over 3 input parties) and each catalogue program, three variants
run in the same invocation, each in a fresh worker process:

- ``engine``: our whole client-side path. Each input party pre-aggregates its rows and
  secret-shares the aggregates (``catalogue.bind(...).share``), 3 local MPyC party
  processes run the catalogued program (``runner.run_local``: job and share files, hash
  checks, guard, re-randomised result shares) and the output party reconstructs.
- ``mpyc``: ``bench/mpc_plain.py``, the simplest honest MPyC program for the same
  statistic with the same pre-aggregation, 3 processes with ``-M3 -I i`` on loopback:
  the engine's own floor.
- ``numpy``: plaintext numpy on the concatenated rows: the absolute floor.

Wall time is measured inside the worker around the computation (data are loaded before
the clock starts; process start-up of the MPC parties is inside it). Peak memory is the
largest ``ru_maxrss`` of the worker and every process it waited for (``os.wait4`` on the
worker): the client process holding all rows for ``engine`` and ``numpy``, the largest
party for ``mpyc``. Column ``client`` is the part of the engine's wall time spent by the
input parties (pre-aggregation and sharing). The row ``catalogue`` runs every decomposable
program in one MPC session. Row-level programs (median, quantile, psi_cardinality) only run up to
``--row-level-max`` rows. Every result is checked against numpy.

    .venv/bin/python bench/mpc.py                      # 10^3 .. 10^6 rows, all programs
    .venv/bin/python bench/mpc.py --quick              # 10^3 and 10^4 rows
    .venv/bin/python bench/mpc.py --rows 1000000 --programs sum,mean,catalogue --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
NO_LOG = ("--no-log",)
PARTIES = 3
EDGES = [str(e) for e in range(0, 10_001, 1000)]
#: name -> (version, params); the decomposable ones first.
PROGRAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "count": ("1.0.0", {}),
    "sum": ("1.0.0", {}),
    "mean": ("1.0.0", {}),
    "variance": ("1.0.0", {}),
    "stddev": ("1.0.0", {}),
    "weighted_mean": ("1.0.0", {}),
    "histogram": ("1.0.0", {"edges": EDGES}),
    "min": ("1.0.0", {}),
    "max": ("1.0.0", {}),
    "median": ("1.0.0", {}),
    "quantile": ("1.0.0", {"q": "0.9"}),
    "psi_cardinality": ("1.0.0", {}),
}
ROW_LEVEL = ("median", "quantile", "psi_cardinality")
DECOMPOSABLE = tuple(p for p in PROGRAMS if p not in ROW_LEVEL)
CATALOGUE = "catalogue"  # every decomposable program in one MPC session
VARIANTS = ("engine", "mpyc", "numpy")
INTEGER_OUTPUTS = ("count", "sum", "histogram", "min", "max", "psi_cardinality")


# -- data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    rows: int
    inputs: list[str]  # one .npz per input party: value, weight, id
    sizes: list[int]
    set_sizes: list[int]  # distinct ids per party (public in a PSI)


def make_data(rows: int, seed: int, directory: Path) -> DataSet:
    """Random rows split over the input parties: values in [0, 10^4), weights in [1, 100]."""
    rng = np.random.default_rng(seed)
    sizes = [rows // PARTIES + (1 if j < rows % PARTIES else 0) for j in range(PARTIES)]
    inputs, set_sizes = [], []
    for j, size in enumerate(sizes):
        path = directory / f"rows{rows}-party{j}.npz"
        ids = rng.integers(0, max(2, size * 3 // 2), size, dtype=np.int64)
        np.savez(
            path,
            value=rng.integers(0, 10_000, size, dtype=np.int64),
            weight=rng.integers(1, 101, size, dtype=np.int64),
            id=ids,
        )
        inputs.append(str(path))
        set_sizes.append(len(np.unique(ids)))
    return DataSet(rows, inputs, sizes, set_sizes)


def load(dataset: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    return [dict(np.load(path)) for path in dataset["inputs"]]


def expand(programs: list[str]) -> list[str]:
    return [p for name in programs for p in (DECOMPOSABLE if name == CATALOGUE else (name,))]


# -- workers (one fresh process per measurement) ----------------------------------------


def _number(value: Any) -> int | float:
    return value if isinstance(value, int) else float(value)


async def run_engine(job: dict[str, Any]) -> tuple[float, dict[str, list[Any]], float]:
    from ptx_chain_node.mpc import catalogue
    from ptx_chain_node.mpc.encoding import EncodedColumns
    from ptx_chain_node.mpc.runner import LocalComputation, reconstruct, run_local

    data = load(job)
    started = time.perf_counter()
    # each input party's columns, encoded once for all the programs of the session
    parties = [EncodedColumns({"value": d["value"], "weight": d["weight"]}) for d in data]
    bound, computations = [], []
    for name in job["programs"]:
        version, params = PROGRAMS[name]
        program = catalogue.bind(name, version, params)
        shares = []
        for party, columns in zip(data, parties, strict=True):  # pre-aggregate, then share
            if name == "psi_cardinality":
                shares.append(program.share({"id": party["id"].tolist()}, m=3))
            else:
                shares.append(program.share(columns, m=3))
        bound.append(program)
        computations.append(LocalComputation(program.ref(), shares))
    shared = time.perf_counter()
    outputs = await run_local(computations, timeout=3600)
    results = {
        program.name: [_number(v) for v in reconstruct(program, vectors).values]
        for program, vectors in zip(bound, outputs, strict=True)
    }
    return time.perf_counter() - started, results, shared - started


def run_numpy(job: dict[str, Any]) -> tuple[float, dict[str, list[Any]]]:
    data = load(job)
    started = time.perf_counter()
    x = np.concatenate([d["value"] for d in data])
    results: dict[str, list[Any]] = {}
    for name in job["programs"]:
        if name == "count":
            results[name] = [len(x)]
        elif name == "sum":
            results[name] = [int(x.sum())]
        elif name == "mean":
            results[name] = [float(x.mean())]
        elif name in ("variance", "stddev"):
            results[name] = [float(x.var(ddof=1) if name == "variance" else x.std(ddof=1))]
        elif name == "weighted_mean":
            w = np.concatenate([d["weight"] for d in data])
            results[name] = [float(np.average(x, weights=w))]
        elif name == "histogram":
            counts, _ = np.histogram(x, bins=np.array(EDGES, dtype=float))
            results[name] = counts.tolist()
        elif name in ("min", "max"):
            results[name] = [int(x.min() if name == "min" else x.max())]
        elif name in ("median", "quantile"):
            results[name] = [float(np.median(x) if name == "median" else np.quantile(x, 0.9))]
        elif name == "psi_cardinality":
            sets = [np.unique(d["id"]) for d in data]
            results[name] = [len(reduce(np.intersect1d, sets))]
    return time.perf_counter() - started, results


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_mpyc(job: dict[str, Any], workdir: Path) -> tuple[float, dict[str, list[Any]]]:
    plain = {
        **job,
        "programs": [{"name": n, "params": PROGRAMS[n][1]} for n in job["programs"]],
        "output": str(workdir / "plain-result.json"),
    }
    job_path = workdir / "plain-job.json"
    job_path.write_text(json.dumps(plain))
    env = {**os.environ, "BENCH_MPC_JOB": str(job_path)}
    started = time.perf_counter()
    addresses = [arg for port in free_ports(PARTIES) for arg in ("-P", f"127.0.0.1:{port}")]
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "mpc_plain.py"), "-M3", "-I", str(i), *addresses, *NO_LOG],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(PARTIES)
    ]
    errors = [p.communicate()[1].decode(errors="replace") for p in processes]
    seconds = time.perf_counter() - started
    for i, (process, error) in enumerate(zip(processes, errors, strict=True)):
        if process.returncode != 0:
            raise SystemExit(f"plain MPyC party {i} failed:\n{error[-2000:]}")
    results = json.loads(Path(plain["output"]).read_text())["results"]
    return seconds, results


def worker(variant: str, job_path: Path) -> None:
    job = json.loads(job_path.read_text())
    client = 0.0
    if variant == "engine":
        seconds, results, client = asyncio.run(run_engine(job))
    elif variant == "mpyc":
        seconds, results = run_mpyc(job, job_path.parent)
    else:
        seconds, results = run_numpy(job)
    answer = {"seconds": seconds, "results": results, "client_seconds": client}
    Path(job["output"]).write_text(json.dumps(answer))


# -- measuring --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    seconds: float
    peak_mb: float
    results: dict[str, list[Any]]
    client_seconds: float  # engine: input parties' pre-aggregation and sharing


def measure(variant: str, dataset: DataSet, programs: list[str], workdir: Path) -> Measurement:
    """One worker process; its peak RSS (and its children's) from ``os.wait4``."""
    job: dict[str, Any] = {
        "programs": programs,
        "inputs": dataset.inputs,
        "sizes": dataset.sizes,
        "set_sizes": dataset.set_sizes,
        "output": str(workdir / f"{variant}-result.json"),
    }
    job_path = workdir / f"{variant}-job.json"
    job_path.write_text(json.dumps(job))
    log = workdir / f"{variant}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", variant, "--job", str(job_path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            cwd=HERE.parent,
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{variant} worker failed:\n{log.read_text()[-3000:]}")
    answer = json.loads(Path(job["output"]).read_text())
    return Measurement(
        answer["seconds"], usage.ru_maxrss / 1024, answer["results"], answer["client_seconds"]
    )


def agrees(name: str, got: list[Any], want: list[Any]) -> bool:
    if len(got) != len(want):
        return False
    if name in INTEGER_OUTPUTS:
        return [int(v) for v in got] == [int(v) for v in want]
    return all(
        math.isclose(g, w, rel_tol=1e-6, abs_tol=1e-9) for g, w in zip(got, want, strict=True)
    )


@dataclass(frozen=True)
class Row:
    rows: int
    program: str
    seconds: dict[str, float]
    peak_mb: dict[str, float]
    client_seconds: float
    ok: bool

    def ratio(self, variant: str) -> float:
        return self.seconds["engine"] / self.seconds[variant]


def bench(dataset: DataSet, program: str, repeat: int, workdir: Path) -> Row:
    names = expand([program])
    runs: dict[str, list[Measurement]] = {v: [] for v in VARIANTS}
    for _ in range(repeat):  # interleaved, so a load spike hits every variant alike
        for variant in VARIANTS:
            runs[variant].append(measure(variant, dataset, names, workdir))
    want = runs["numpy"][0].results
    ok = all(
        agrees(name, m.results[name], want[name])
        for variant in ("engine", "mpyc")
        for m in runs[variant]
        for name in names
    )
    return Row(
        dataset.rows,
        program,
        {v: statistics.median(m.seconds for m in ms) for v, ms in runs.items()},
        {v: statistics.median(m.peak_mb for m in ms) for v, ms in runs.items()},
        statistics.median(m.client_seconds for m in runs["engine"]),
        ok,
    )


def print_row(row: Row) -> None:
    s, mb = row.seconds, row.peak_mb
    print(
        f"{row.rows:>9,} {row.program:<16}"
        f"{s['engine']:>9.3f}{row.client_seconds:>9.3f}{s['mpyc']:>9.3f}{s['numpy']:>9.4f}"
        f"{row.ratio('mpyc'):>9.2f}x{row.ratio('numpy'):>10.0f}x"
        f"{mb['engine']:>9.0f}{mb['mpyc']:>8.0f}{mb['numpy']:>8.0f}"
        f"  {'ok' if row.ok else 'MISMATCH'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000,10000,100000,1000000")
    parser.add_argument("--programs", default=",".join([*PROGRAMS, CATALOGUE]))
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 rows only")
    parser.add_argument("--repeat", type=int, default=1, help="median of this many runs")
    parser.add_argument("--row-level-max", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.job)
        return 0
    sizes = [1000, 10_000] if args.quick else [int(r) for r in args.rows.split(",")]
    programs = [p.strip() for p in args.programs.split(",") if p.strip()]
    unknown = [p for p in programs if p not in PROGRAMS and p != CATALOGUE]
    if unknown:
        parser.error(f"unknown programs {unknown}; known: {', '.join([*PROGRAMS, CATALOGUE])}")
    print(f"cores: {os.cpu_count()}  load: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"3 input parties, 3 MPC parties (local), repeat {args.repeat} (median)\n")
    print(
        f"{'rows':>9} {'program':<16}{'engine s':>9}{'client':>9}{'mpyc s':>9}{'numpy s':>9}"
        f"{'eng/mpyc':>10}{'eng/numpy':>11}{'eng MB':>9}{'mpyc MB':>8}{'np MB':>8}  check"
    )
    table: list[Row] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-mpc-") as tmp:
        workdir = Path(tmp)
        for rows in sizes:
            dataset = make_data(rows, args.seed, workdir)
            for program in programs:
                if program in ROW_LEVEL and rows > args.row_level_max:
                    skipped.append(f"{program}@{rows:,}")
                    continue
                table.append(bench(dataset, program, args.repeat, workdir))
                print_row(table[-1])
    if skipped:
        print(f"\nskipped (row-level, more than {args.row_level_max:,} rows): {', '.join(skipped)}")
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    decomposable = [r for r in table if r.program not in ROW_LEVEL]
    if decomposable:
        largest = max(r.rows for r in decomposable)
        at = [r for r in decomposable if r.rows == largest]
        worst = max(at, key=lambda r: r.ratio("mpyc"))
        slowest = max(at, key=lambda r: r.seconds["engine"])
        print(
            f"\npre-aggregated programs at {largest:,} rows: engine/mpyc at most "
            f"{worst.ratio('mpyc'):.2f}x ({worst.program}), engine wall at most "
            f"{slowest.seconds['engine']:.2f} s ({slowest.program}); goal: <= 1.3x and < 3 s"
        )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in table], indent=1))
    return 0 if all(r.ok for r in table) else 1


if __name__ == "__main__":
    sys.exit(main())
