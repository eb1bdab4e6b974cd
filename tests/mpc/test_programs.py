"""Every catalogue program with real MPyC party processes on 127.0.0.1, 3 and 5 nodes.

Each hypothesis example is one MPyC session running all programs (batched) on random data;
every result is checked against a plain-Python recomputation: integers and decimals
exactly, fixed point within the program's declared precision.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ptx_chain_node.errors import NotFoundError, PtxError
from ptx_chain_node.mpc import catalogue
from ptx_chain_node.mpc.catalogue import BoundProgram, ProgramRef, bind, resolve
from ptx_chain_node.mpc.errors import GroupTooSmall, ProgramMismatch, RunFailed
from ptx_chain_node.mpc.job import Computation, PartyJob
from ptx_chain_node.mpc.party import EXIT_PEER, EXIT_TIMEOUT
from ptx_chain_node.mpc.runner import LocalComputation, LocalRun, reconstruct, run_local
from ptx_chain_node.mpc.sharing import ShareVector, reveal

V = "1.0.0"
UNIVERSE = [f"person-{i}" for i in range(24)]


@dataclass
class Dataset:
    """Rows of each input party (encoded integers) and how they are presented as columns."""

    rows: list[list[int]]
    weights: list[list[int]]
    ids: list[list[str]]
    scale: int
    weight_scale: int
    edges: list[Decimal]
    q: Decimal

    def columns(self, j: int) -> dict[str, list[object]]:
        # present values as the kinds of objects a gateway hands over: ints, str, Decimal
        values: list[object] = []
        for k, v in enumerate(self.rows[j]):
            d = Decimal(v).scaleb(-self.scale)
            values.append(v if self.scale == 0 else (str(d) if k % 2 else d))
        weights = [Decimal(w).scaleb(-self.weight_scale) for w in self.weights[j]]
        return {"value": values, "weight": list(weights), "id": list(self.ids[j])}

    @property
    def all_rows(self) -> list[Fraction]:
        return [Fraction(v, 10**self.scale) for r in self.rows for v in r]


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    parties = draw(st.integers(1, 3))
    value = st.one_of(st.integers(-1000, 1000), st.integers(-(2**31) + 1, 2**31 - 1))
    rows = [draw(st.lists(value, max_size=9)) for _ in range(parties)]
    if sum(map(len, rows)) < 2:
        rows[0] += [draw(value), draw(value)]
    weights = [[draw(st.integers(0, 10**4)) for _ in r] for r in rows]
    if sum(map(sum, weights)) == 0:
        first = next(r for r in weights if r)
        first[0] = 1
    ids = [
        draw(st.lists(st.sampled_from(UNIVERSE), min_size=2, max_size=10, unique=True))
        for _ in range(parties)
    ]
    scale = draw(st.sampled_from([0, 2]))
    cuts = draw(st.lists(st.integers(-(2**31), 2**31), min_size=2, max_size=5, unique=True))
    edges = [Decimal(c).scaleb(-scale) for c in sorted(cuts)]
    return Dataset(
        rows=rows,
        weights=weights,
        ids=ids,
        scale=scale,
        weight_scale=draw(st.sampled_from([0, 1])),
        edges=edges,
        q=Decimal(draw(st.integers(0, 100))).scaleb(-2),
    )


def bound_programs(data: Dataset, k: int) -> list[BoundProgram]:
    value = {"scale": data.scale, "min_group_size": k}
    return [
        bind("count", V, {"min_group_size": k}),
        bind("sum", V, value),
        bind("mean", V, value),
        bind("variance", V, value),
        bind("stddev", V, value),
        bind("weighted_mean", V, {**value, "weight_scale": data.weight_scale}),
        bind("histogram", V, {**value, "edges": [str(e) for e in data.edges]}),
        bind("min", V, value),
        bind("max", V, value),
        bind("median", V, value),
        bind("quantile", V, {**value, "q": str(data.q)}),
        bind("psi_cardinality", V, {"min_group_size": k}),
    ]


def computations(data: Dataset, bound: list[BoundProgram], m: int) -> list[LocalComputation]:
    return [
        LocalComputation(b.ref(), [b.share(data.columns(j), m) for j in range(len(data.rows))])
        for b in bound
    ]


def linear_quantile(values: list[Fraction], q: Fraction) -> Fraction:
    """numpy's default ("linear") quantile, in exact arithmetic."""
    ordered = sorted(values)
    h = q * (len(ordered) - 1)
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (h - lo) * (ordered[hi] - ordered[lo])


def expected_results(data: Dataset) -> dict[str, Any]:
    xs = data.all_rows
    n = len(xs)
    ws = [Fraction(w, 10**data.weight_scale) for r in data.weights for w in r]
    mean = sum(xs, Fraction(0)) / n
    variance = sum(((x - mean) ** 2 for x in xs), Fraction(0)) / (n - 1)
    edges = [Fraction(e) for e in data.edges]
    last = len(edges) - 2
    histogram = [
        sum(1 for x in xs if lo <= x < hi or (j == last and x == hi))
        for j, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]
    sets = [set(i) for i in data.ids]
    return {
        "count": n,
        "sum": sum(xs, Fraction(0)),
        "mean": mean,
        "variance": variance,
        "stddev": math.sqrt(variance),
        "weighted_mean": sum((w * x for w, x in zip(ws, xs, strict=True)), Fraction(0)) / sum(ws),
        "histogram": histogram,
        "min": min(xs),
        "max": max(xs),
        "median": statistics.median(xs),
        "quantile": linear_quantile(xs, Fraction(data.q)),
        "psi_cardinality": len(set.intersection(*sets)),
    }


def check_results(
    data: Dataset, bound: list[BoundProgram], shares: list[list[ShareVector]]
) -> None:
    expected = expected_results(data)
    t = shares[0][0].t
    for b, vectors in zip(bound, shares, strict=True):
        result = reconstruct(b, vectors[-(t + 1) :], verify=False)  # any t+1 suffice
        assert reconstruct(b, vectors).values == result.values  # all m agree
        want = expected[b.name]
        got = result.values
        if b.name == "histogram":
            assert got == want
            continue
        (value,) = got
        if b.program.precision is None:  # exact: int, or Decimal with the column's scale
            assert Fraction(value) == want, b.name
            if b.name in ("sum", "min", "max") and data.scale:
                assert isinstance(value, Decimal)
            else:
                assert isinstance(value, int)
        else:
            assert isinstance(value, float)
            assert b.program.precision.admits(value, float(want)), (b.name, value, float(want))
    # the float recomputation by numpy agrees too (a second, independent reference)
    xs = np.array([float(x) for x in data.all_rows])
    by_name = {b.name: reconstruct(b, v).values[0] for b, v in zip(bound, shares, strict=True)}
    assert math.isclose(by_name["mean"], float(np.mean(xs)), rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(by_name["variance"], float(np.var(xs, ddof=1)), rel_tol=1e-6, abs_tol=1e-6)
    assert math.isclose(
        by_name["quantile"], float(np.quantile(xs, float(data.q))), rel_tol=1e-9, abs_tol=1e-9
    )


def run(computations: list[LocalComputation], timeout: float = 60.0) -> list[list[ShareVector]]:
    return asyncio.run(run_local(computations, timeout=timeout))


SLOW = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)


EXTREMES = Dataset(
    rows=[[2**31 - 1, -(2**31) + 1, 0, 1, -1, 2**31 - 2]],
    weights=[[0, 0, 0, 0, 0, 7]],
    ids=[["a", "b"]],
    scale=2,
    weight_scale=1,
    edges=[Decimal("-0.01"), Decimal("0"), Decimal("0.01")],
    q=Decimal("1"),
)


@settings(SLOW, max_examples=5)
@given(data=datasets())
@example(data=EXTREMES)
def test_all_programs_with_3_nodes(data: Dataset) -> None:
    bound = bound_programs(data, k=2)
    check_results(data, bound, run(computations(data, bound, 3)))


@settings(SLOW, max_examples=3)
@given(data=datasets())
def test_all_programs_with_5_nodes(data: Dataset) -> None:
    bound = bound_programs(data, k=2)
    check_results(data, bound, run(computations(data, bound, 5)))


def test_group_size_guard_withholds_results_and_their_shares_hide_them() -> None:
    data = Dataset(
        rows=[[5, 9, 1], [4, 4]],
        weights=[[1, 2, 3], [4, 5]],
        ids=[["a", "b", "c"], ["b", "c", "d", "e"]],
        scale=0,
        weight_scale=0,
        edges=[Decimal(0), Decimal(5), Decimal(10)],
        q=Decimal("0.25"),
    )
    n = 5
    smallest_set = 3
    withheld = bound_programs(data, k=n + 1)
    withheld[-1] = bind("psi_cardinality", V, {"min_group_size": smallest_set + 1})
    released = [
        bind("count", V, {"min_group_size": n}),
        bind("mean", V, {"min_group_size": n}),
        bind("median", V, {"min_group_size": n}),
        bind("psi_cardinality", V, {"min_group_size": smallest_set}),
    ]
    total = bind("sum", V, {"min_group_size": n})
    total_inputs = [total.share(data.columns(j), 3) for j in range(2)]
    twice = [LocalComputation(total.ref(), total_inputs)] * 2
    shares = run(computations(data, withheld + released, 3) + twice)
    for b, vectors in zip(withheld, shares, strict=False):
        with pytest.raises(GroupTooSmall) as info:
            reconstruct(b, vectors)
        assert info.value.status == 422
        assert set(b.program.stype.signed(reveal(vectors))) == {0}  # nothing but zeros
    tail = shares[len(withheld) : -2]
    got = [reconstruct(b, v).values[0] for b, v in zip(released, tail, strict=True)]
    assert got == [5, pytest.approx(4.6, rel=2**-48), 4.0, 2]
    # result shares are re-randomised: the same sum of the same input shares twice gives
    # the same result from unrelated shares, and not the (deterministic) sum of input shares
    first, second = shares[-2:]
    assert reconstruct(total, first).values == reconstruct(total, second).values == [23]
    for node in range(3):
        assert first[node].values != second[node].values
        local_sum = sum(v[node].values[1] for v in total_inputs) % total.program.stype.modulus
        assert first[node].values[0] != local_sum


def test_a_tampered_hash_is_refused_by_the_catalogue_and_by_every_party() -> None:
    bound = bind("sum", V, {"min_group_size": 1})
    ref = bound.ref()
    tampered = ProgramRef(ref.name, ref.version, ref.params, "0" * 64)
    with pytest.raises(ProgramMismatch) as info:
        resolve(tampered)
    assert info.value.status == 409
    # the same hash with other parameters is refused too: parameters are part of the pin
    with pytest.raises(ProgramMismatch):
        resolve(ProgramRef(ref.name, ref.version, {"min_group_size": 2}, ref.hash))
    assert resolve(ref).hash == bound.hash
    inputs = [bound.share({"value": [1, 2, 3]}, 3)]
    started = time.monotonic()
    with pytest.raises(RunFailed) as failure:
        run([LocalComputation(tampered, inputs)], timeout=30)
    assert time.monotonic() - started < 15
    message = failure.value.message
    assert all(f"party {i} (exit 2)" in message for i in range(3)), message
    assert "does not match the catalogue" in message


def test_shares_made_for_another_program_are_refused_by_the_party() -> None:
    mean = bind("mean", V, {"min_group_size": 1})
    total = bind("sum", V, {"min_group_size": 1})
    inputs = [total.share({"value": [1, 2, 3]}, 3)]
    with pytest.raises(PtxError) as info:
        mean.check_input(inputs[0][0])
    assert {p.field for p in info.value.problems} >= {"input.program", "input.modulus"}
    with pytest.raises(RunFailed, match="shared for another program"):
        run([LocalComputation(mean.ref(), inputs)], timeout=30)


def test_unknown_programs_and_bad_parameters_are_refused() -> None:
    with pytest.raises(NotFoundError):
        bind("regression", V)
    with pytest.raises(NotFoundError):
        bind("mean", "9.9.9")
    with pytest.raises(PtxError) as info:
        bind("histogram", V, {"edges": ["3", "1"]})
    assert info.value.problems[0].field == "params.edges"
    with pytest.raises(PtxError):
        bind("variance", V, {"min_group_size": 1})
    with pytest.raises(PtxError):
        bind("quantile", V, {"q": "1.5"})
    with pytest.raises(PtxError):
        bind("mean", V, {"scale": 2, "code": "import os"})


def test_catalogue_pins_every_program_by_name_version_params_and_code() -> None:
    names = {p.name for p in catalogue.programs()}
    assert names == {
        "count", "sum", "mean", "variance", "stddev", "weighted_mean", "histogram",
        "min", "max", "median", "quantile", "psi_cardinality",
    }  # fmt: skip
    hashes = {bind(p.name, p.version, _minimal_params(p.name)).hash for p in catalogue.programs()}
    assert len(hashes) == len(names)
    a = bind("mean", V, {"scale": 1})
    assert a.hash == bind("mean", V, {"scale": 1, "min_group_size": 5}).hash
    assert a.hash != bind("mean", V, {"scale": 2}).hash
    description = a.describe()
    assert description["hash"] == a.hash
    assert description["decomposable"] is True
    assert bind("median", V).describe()["decomposable"] is False


def _minimal_params(name: str) -> dict[str, Any]:
    if name == "histogram":
        return {"edges": ["0", "1"]}
    if name == "quantile":
        return {"q": "0.5"}
    return {}


def _slow_computations(m: int) -> list[LocalComputation]:
    """Well over 10 s of MPC work (about 4 s of square roots, then a 300-row sort)."""
    stddev = bind("stddev", V, {"min_group_size": 2})
    median = bind("median", V, {"min_group_size": 2})
    rows = list(range(-150, 150))
    comps = [LocalComputation(stddev.ref(), [stddev.share({"value": rows}, m)])] * 10
    comps.append(LocalComputation(median.ref(), [median.share({"value": rows}, m)]))
    return comps


async def test_a_killed_party_fails_the_run_quickly_with_the_reason() -> None:
    comps = _slow_computations(3)
    async with LocalRun(comps, timeout=60.0) as local:
        await asyncio.wait_for(local.connected(), 30)
        await asyncio.sleep(0.3)  # well inside the computation (about 4 s of work)
        os.kill(local.pids[1], signal.SIGKILL)
        killed = time.monotonic()
        with pytest.raises(RunFailed) as failure:
            await local.wait()
    elapsed = time.monotonic() - killed
    assert elapsed < 5, elapsed  # at most the runner's grace period, not the time limit
    message = failure.value.message
    assert "party 1 was killed by signal SIGKILL" in message
    assert "lost the connection to party 1" in message  # the others noticed by themselves
    assert failure.value.status == 502
    others = [e for e in local.exits if e.index != 1]
    assert {e.returncode for e in others} == {EXIT_PEER}, [e.log for e in others]


async def test_a_run_over_its_time_limit_fails_with_the_reason() -> None:
    comps = _slow_computations(3)
    started = time.monotonic()
    with pytest.raises(RunFailed) as failure:
        await run_local(comps, timeout=6.0)
    assert time.monotonic() - started < 6.0 + 1.0
    message = failure.value.message
    assert "(exit 4): no result within the time limit" in message, message


def test_a_party_whose_peers_never_come_exits_at_its_time_limit(tmp_path: Path) -> None:
    bound = bind("count", V, {"min_group_size": 1})
    vectors = bound.share({"value": [1, 2]}, 3)
    vectors[0].dump(tmp_path / "input.json")
    from ptx_chain_node.mpc.runner import free_ports

    ports = free_ports(3)
    job = PartyJob(
        run_id="r1",
        index=0,
        parties=[f"127.0.0.1:{p}" for p in ports],
        computations=[Computation(bound.ref(), [tmp_path / "input.json"])],
        output=tmp_path / "result.json",
        timeout=1.5,
    )
    job.dump(tmp_path / "job.json")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ptx_chain_node.mpc.party", "--job", str(tmp_path / "job.json")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == EXIT_TIMEOUT
    assert time.monotonic() - started < 10
    assert f"not connected: parties 1 (127.0.0.1:{ports[1]})" in done.stderr
    assert not (tmp_path / "result.json").exists()
