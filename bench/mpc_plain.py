"""The plain MPyC floor of ``bench/mpc.py``: the catalogue statistics written directly in MPyC.

One process per party, started by ``bench/mpc.py`` as::

    BENCH_MPC_JOB=job.json python bench/mpc_plain.py -M3 -I i -P host:port ... --no-log

Each party is also an input party: it loads its own rows, pre-aggregates them with numpy
(the same aggregates the catalogue shares: n, sums, bin counts, local min/max), enters the
aggregates with ``mpc.input`` and the parties combine them; row-level programs enter every
row. No hash pinning, no share files, no group-size guard, no client-side sharing: this is
the simplest honest MPyC program for each statistic, so ``engine / plain`` is our overhead.
Party 0 writes ``{"results": {program: [values]}}`` to the job's ``output``.
"""

from __future__ import annotations

import json
import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from mpyc.runtime import mpc
from mpyc.statistics import _fsqrt  # MPyC's own square root (what its stdev uses)

secint64 = mpc.SecInt(64)
secint128 = mpc.SecInt(128)
secfxp = mpc.SecFxp(128, 64)


def enter(stype: Any, local: list[int]) -> list[list[Any]]:
    """Every party's aggregate vector (same length at every party) as secure numbers."""
    return list(mpc.input([stype(int(v)) for v in local]))


def totals(shared: list[list[Any]]) -> list[Any]:
    return [mpc.sum([vector[k] for vector in shared]) for k in range(len(shared[0]))]


def rows_of_all(values: np.ndarray, sizes: list[int]) -> Any:
    """Row-level input: party j enters its rows; one secure array of all rows."""
    parts = []
    for j, size in enumerate(sizes):
        mine = values if j == mpc.pid else np.zeros(size, dtype=np.int64)
        parts.append(mpc.input(secint64.array(mine.astype(object)), senders=j))
    return mpc.np_concatenate(parts)


async def order_statistic(rows: Any, n: int, q: Fraction) -> float:
    ordered = mpc.np_sort(rows)
    h = q * (n - 1)
    lo = h.numerator // h.denominator
    g = h - lo
    hi = min(lo + 1, n - 1)
    x = ordered[lo] * (g.denominator - g.numerator) + ordered[hi] * g.numerator
    return float(Fraction(int(await mpc.output(x)), g.denominator))


async def compute(name: str, params: dict[str, Any], data: Any, job: dict[str, Any]) -> list[Any]:
    x = data["value"]
    if name == "count":
        (n,) = totals(enter(secint64, [len(x)]))
        return [int(await mpc.output(n))]
    if name == "sum":
        (_, s) = totals(enter(secint128, [len(x), int(x.sum())]))
        return [int(await mpc.output(s))]
    if name == "mean":
        n, s = totals(enter(secfxp, [len(x), int(x.sum())]))
        return [float(await mpc.output(s / n))]
    if name in ("variance", "stddev"):
        n, s1, s2 = totals(enter(secfxp, [len(x), int(x.sum()), int((x * x).sum())]))
        variance = (n * s2 - s1 * s1) / (n * (n - 1))
        result = _fsqrt(variance) if name == "stddev" else variance
        return [float(await mpc.output(result))]
    if name == "weighted_mean":
        w = data["weight"]
        _, sw, swx = totals(enter(secfxp, [len(x), int(w.sum()), int((w * x).sum())]))
        return [float(await mpc.output(swx / sw))]
    if name == "histogram":
        counts, _ = np.histogram(x, bins=np.array(params["edges"], dtype=float))
        return [int(v) for v in await mpc.output(totals(enter(secint64, counts.tolist())))]
    if name in ("min", "max"):
        shared = [vector[0] for vector in enter(secint64, [x.max() if name == "max" else x.min()])]
        best = mpc.max(shared) if name == "max" else mpc.min(shared)
        return [int(await mpc.output(best))]
    if name in ("median", "quantile"):
        q = Fraction(1, 2) if name == "median" else Fraction(str(params["q"]))
        sizes = job["sizes"]
        return [await order_statistic(rows_of_all(x, sizes), sum(sizes), q)]
    if name == "psi_cardinality":
        return [await intersection_size(np.unique(data["id"]), job["set_sizes"])]
    raise SystemExit(f"unknown program {name}")


async def intersection_size(ids: np.ndarray, set_sizes: list[int]) -> int:
    sets = []
    for j, size in enumerate(set_sizes):
        mine = ids if j == mpc.pid else np.zeros(size, dtype=np.int64)
        sets.append(mpc.input(secint64.array(mine.astype(object)), senders=j))
    sets.sort(key=len)
    smallest = sets[0].reshape(-1, 1)
    member: Any = None
    for other in sets[1:]:
        hits = np.sum(smallest == other.reshape(1, -1), axis=1)
        member = hits if member is None else member * hits
    return int(await mpc.output(np.sum(member)))


async def main() -> None:
    job = json.loads(Path(os.environ["BENCH_MPC_JOB"]).read_text())
    await mpc.start()
    data = dict(np.load(job["inputs"][mpc.pid]))  # read each column once, not per program
    results = {}
    for program in job["programs"]:
        results[program["name"]] = await compute(program["name"], program["params"], data, job)
    await mpc.shutdown()
    if mpc.pid == 0:
        Path(job["output"]).write_text(json.dumps({"results": results}))


if __name__ == "__main__":
    if "BENCH_MPC_JOB" not in os.environ:
        sys.exit("started by bench/mpc.py (BENCH_MPC_JOB names the job file)")
    mpc.run(main())
