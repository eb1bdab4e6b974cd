"""Client-side sharing, encoding and pre-aggregation (no MPyC processes)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptx_chain_node.errors import PtxError
from ptx_chain_node.mpc import aggregate
from ptx_chain_node.mpc.encoding import (
    identifier_code,
    identifier_codes,
    scale_column,
    scale_edge,
    scale_value,
)
from ptx_chain_node.mpc.fields import FXP128, INT64, INT128, SecureType
from ptx_chain_node.mpc.sharing import (
    ShareVector,
    check_parties,
    recombine,
    reveal,
    share,
    split,
)

P = INT64.modulus
SMALL_PRIME = 11


@st.composite
def parties_and_threshold(draw: st.DrawFn) -> tuple[int, int]:
    m = draw(st.integers(3, 7))
    t = draw(st.integers(1, (m - 1) // 2))
    return m, t


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-(2**90), 2**90), min_size=1, max_size=40),
    mt=parties_and_threshold(),
    data=st.data(),
)
def test_any_t_plus_1_shares_reconstruct(
    values: list[int], mt: tuple[int, int], data: st.DataObject
) -> None:
    m, t = mt
    stype = INT128
    rows = split(values, stype.modulus, m, t)
    assert len(rows) == m
    assert all(len(r) == len(values) for r in rows)
    subset = data.draw(st.permutations(range(m)).map(lambda p: sorted(p[: t + 1])))
    got = recombine({i: rows[i] for i in subset}, stype.modulus)
    assert stype.signed(got) == values
    # with t given, all m shares are checked for consistency and still agree
    assert stype.signed(recombine(dict(enumerate(rows)), stype.modulus, t)) == values


@settings(max_examples=30, deadline=None)
@given(
    values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20),
    mt=parties_and_threshold(),
)
def test_share_vectors_round_trip_through_json(values: list[int], mt: tuple[int, int]) -> None:
    m, t = mt
    vectors = share(values, FXP128, m, t, program="abc")
    parsed = [ShareVector.from_json(v.to_json()) for v in vectors]
    assert parsed == vectors
    assert [v.party for v in parsed] == list(range(m))
    fields = reveal(parsed[: t + 1], verify=True)
    assert FXP128.signed(fields) == [v << FXP128.frac_length for v in values]


def test_every_t_plus_1_subset_of_5_nodes_reconstructs() -> None:
    values = [0, 1, -1, 2**62, -(2**62), 123456789]
    rows = split(values, P, 5, 2)
    for subset in itertools.combinations(range(5), 3):
        assert INT64.signed(recombine({i: rows[i] for i in subset}, P)) == values


@pytest.mark.parametrize(("m", "t", "parties"), [(3, 1, (0,)), (5, 2, (1, 3))])
def test_t_shares_are_uniform_whatever_the_secret(m: int, t: int, parties: tuple[int, ...]) -> None:
    # Over GF(11) the joint distribution of any t shares must be uniform for every secret.
    samples = 6000 if t == 1 else 24000
    cells = SMALL_PRIME**t
    histograms = []
    for secret in (0, 5):
        rows = split([secret] * samples, SMALL_PRIME, m, t)
        joint = Counter(zip(*(rows[i] for i in parties), strict=True))
        assert len(joint) == cells
        histograms.append(joint)
    expected = samples / cells
    for joint in histograms:
        chi2 = sum((c - expected) ** 2 / expected for c in joint.values())
        # mean cells-1, sd sqrt(2(cells-1)); 6 sd is a false alarm about once in 10**9 runs
        assert chi2 < (cells - 1) + 6 * math.sqrt(2 * (cells - 1))
    # and the shares of the two secrets have the same distribution
    a, b = histograms
    pooled = sum((a[k] - b[k]) ** 2 / (a[k] + b[k]) for k in set(a) | set(b) if a[k] + b[k] > 0)
    assert pooled < (cells - 1) + 6 * math.sqrt(2 * (cells - 1))


def test_shares_of_a_vector_are_fresh_each_time() -> None:
    first = split([7, 7, 7], P, 3)
    second = split([7, 7, 7], P, 3)
    assert first != second
    assert len(set(first[0])) == 3  # equal secrets, unrelated shares


@pytest.mark.parametrize("m", [0, 1, 2])
def test_fewer_than_three_nodes_are_refused(m: int) -> None:
    with pytest.raises(PtxError) as info:
        split([1, 2, 3], P, m)
    assert info.value.problems[0].field == "m"
    with pytest.raises(PtxError):
        share([1], INT64, m)


@pytest.mark.parametrize(("m", "t"), [(3, 0), (3, 2), (4, 2), (5, 3)])
def test_threshold_without_honest_majority_is_refused(m: int, t: int) -> None:
    with pytest.raises(PtxError) as info:
        check_parties(m, t)
    assert info.value.problems[0].field == "t"


def test_default_threshold_is_honest_majority() -> None:
    assert [check_parties(m) for m in (3, 4, 5, 6, 7)] == [1, 1, 2, 2, 3]


def test_a_corrupted_share_is_detected_when_checking() -> None:
    vectors = share([10, 20, 30], INT64, 5)
    bad = ShareVector(
        party=4,
        m=5,
        t=2,
        modulus=P,
        values=[(vectors[4].values[0] + 1) % P, *vectors[4].values[1:]],
    )
    with pytest.raises(PtxError, match="inconsistent"):
        reveal([*vectors[:4], bad], verify=True)
    assert INT64.signed(reveal(vectors[:3])) == [10, 20, 30]


def test_too_few_shares_are_refused_when_checking() -> None:
    vectors = share([1], INT64, 5)
    with pytest.raises(PtxError, match="cannot reconstruct"):
        reveal(vectors[:2], verify=True)


@pytest.mark.parametrize(
    "doc_change",
    [
        {"format": "other"},
        {"data": "!!!"},
        {"count": 99},
        {"m": 2},
        {"party": 7},
    ],
)
def test_malformed_share_vectors_are_refused(doc_change: dict[str, object]) -> None:
    doc = share([1, 2], INT64, 3)[0].to_json()
    doc.update(doc_change)
    with pytest.raises(PtxError):
        ShareVector.from_json(doc)


def test_a_value_outside_the_field_is_refused() -> None:
    vector = ShareVector(party=0, m=3, t=1, modulus=11, values=[3, 12])
    with pytest.raises(PtxError, match="malformed"):
        ShareVector.from_json(vector.to_json())


def test_secure_type_moduli_match_mpyc() -> None:
    from ptx_chain_node.mpc.fields import mpyc_module

    finfields = mpyc_module("finfields")
    for stype in (INT64, INT128, FXP128):
        p = stype.modulus
        assert p.bit_length() == stype.bit_length + stype.frac_length + 32
        assert finfields.GF(p).modulus == p
    with pytest.raises(ValueError, match="frac_length"):
        SecureType("fxp", 32, 8)


# encoding ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(value=st.integers(-(10**20), 10**20), scale=st.integers(0, 6))
def test_decimal_scaling_is_exact(value: int, scale: int) -> None:
    text = str(Decimal(value).scaleb(-scale))
    assert scale_value(text, scale) == value
    assert scale_value(Decimal(text), scale) == value
    assert scale_column([text, Decimal(text)], scale, "value") == [value, value]


def test_scaling_accepts_plain_and_numpy_numbers() -> None:
    assert scale_value(0.1, 2) == 10
    assert scale_value(3, 2) == 300
    assert scale_value(np.int64(-4), 1) == -40
    assert scale_value(np.float64(2.5), 1) == 25
    assert scale_column(np.array([1, 2, 3]), 0, "v") == [1, 2, 3]


@pytest.mark.parametrize("bad", ["1.234", True, None, float("nan"), "x", [1], float("inf")])
def test_values_that_cannot_be_encoded_exactly_are_refused(bad: object) -> None:
    with pytest.raises(PtxError) as info:
        scale_column([1, bad], 2, "price")
    assert info.value.problems[0].field == "price[1]"
    assert info.value.status == 422


def test_values_out_of_range_are_refused() -> None:
    with pytest.raises(PtxError, match="cannot be encoded"):
        scale_column([2**31], 0, "value", bound=2**31)


def test_identifier_codes_are_keyed_61_bit_and_distinct_per_set() -> None:
    assert identifier_code("alice") == identifier_code("alice")
    assert identifier_code("alice") != identifier_code("alice", key=b"k")
    assert identifier_code("1") != identifier_code(1)
    assert 0 <= identifier_code(b"x") < 2**61
    codes = identifier_codes(["a", "b", "a", 3], "id")
    assert len(codes) == 3
    assert codes == sorted(codes)
    with pytest.raises(PtxError):
        identifier_codes(["a", 1.5], "id")


# pre-aggregation -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000), max_size=60),
    edges=st.lists(st.integers(-1200, 1200), min_size=2, max_size=8, unique=True),
)
def test_bin_counts_match_numpy_histogram(values: list[int], edges: list[int]) -> None:
    edges.sort()
    got = aggregate.bin_counts(values, [Fraction(e) for e in edges])
    expected, _ = np.histogram(np.array(values, dtype=float), bins=np.array(edges, dtype=float))
    assert got == [len(values), *expected.tolist()]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-(10**5), 10**5), max_size=40),
    edges=st.lists(st.decimals(-1000, 1000, places=3), min_size=2, max_size=6, unique=True),
    scale=st.integers(0, 2),
)
def test_bin_counts_with_decimal_edges_are_exact(
    values: list[int], edges: list[Decimal], scale: int
) -> None:
    edges.sort()
    got = aggregate.bin_counts(values, [scale_edge(e, scale) for e in edges])
    plain = [Fraction(v, 10**scale) for v in values]
    bounds = [Fraction(e) for e in edges]
    expected = [
        sum(1 for x in plain if lo <= x < hi or (j == len(bounds) - 2 and x == hi))
        for j, (lo, hi) in enumerate(itertools.pairwise(bounds))
    ]
    assert got == [len(values), *expected]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-(2**40), 2**40), max_size=30),
    weights=st.lists(st.integers(0, 2**20), max_size=30),
)
def test_moments_and_weighted_sums(values: list[int], weights: list[int]) -> None:
    assert aggregate.moments(values) == [len(values), sum(values), sum(v * v for v in values)]
    assert aggregate.moments(values, 3)[3] == sum(v**3 for v in values)
    pairs = list(zip(values, weights, strict=False))
    xs = [v for v, _ in pairs]
    ws = [w for _, w in pairs]
    assert aggregate.weighted_sums(xs, ws) == [
        len(pairs),
        sum(ws),
        sum(v * w for v, w in pairs),
    ]
    if values:
        assert aggregate.extreme(values, largest=True, empty=0) == [len(values), max(values)]
        assert aggregate.extreme(values, largest=False, empty=0) == [len(values), min(values)]
    assert aggregate.extreme([], largest=True, empty=-9) == [0, -9]


def test_split_of_100k_values_is_fast_enough() -> None:
    import time

    values = list(range(-50_000, 50_000))
    started = time.perf_counter()
    rows = split(values, FXP128.modulus, 3)
    elapsed = time.perf_counter() - started
    assert FXP128.signed(recombine({0: rows[0], 2: rows[2]}, FXP128.modulus)) == values
    assert elapsed < 5.0  # about 0.1 s on the 2-core reference machine
