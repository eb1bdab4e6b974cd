"""Vectorised encoding and pre-aggregation against plain Python ints, at the int64 edges.

numpy's int64 paths must give exactly what Python's unbounded ints give: on random data,
on values whose sums (or sums of squares, or products) overflow int64, and on values at
the very ends of the int64 range, where the code has to fall back to Python ints.
"""

from __future__ import annotations

import bisect
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptx_chain_node.errors import PtxError
from ptx_chain_node.mpc import aggregate
from ptx_chain_node.mpc.catalogue import bind
from ptx_chain_node.mpc.encoding import EncodedColumns, encode_column, scale_column

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def reference_bins(values: list[int], edges: list[Fraction]) -> list[int]:
    """numpy.histogram semantics with exact rationals, one value at a time."""
    lows = [ceil(e) for e in edges]
    bins = len(edges) - 1
    counts = [0] * bins
    for v in values:
        j = bisect.bisect_right(lows, v) - 1
        if 0 <= j < bins:
            counts[j] += 1
        elif j == bins and v <= floor(edges[-1]):
            counts[bins - 1] += 1
    return [len(values), *counts]


def check_all(values: list[int], weights: list[int] | None = None) -> None:
    """Every aggregate, from a list and from the encoded array, against Python ints."""
    weights = weights if weights is not None else [abs(v) // 3 for v in values]
    for given_values in (values, encode_column(values, 0, "v")):
        assert aggregate.moments(given_values, 3) == [
            len(values),
            sum(values),
            sum(v * v for v in values),
            sum(v**3 for v in values),
        ]
        assert aggregate.weighted_sums(given_values, encode_column(weights, 0, "w")) == [
            len(values),
            sum(weights),
            sum(w * v for v, w in zip(values, weights, strict=True)),
        ]
        if values:
            assert aggregate.extreme(given_values, True, 0) == [len(values), max(values)]
            assert aggregate.extreme(given_values, False, 0) == [len(values), min(values)]


@settings(max_examples=80, deadline=None)
@given(
    magnitude=st.sampled_from([10, 2**20, 2**31, 2**40, 2**50, 2**62, INT64_MAX, 2**70]),
    size=st.sampled_from([0, 1, 5, 300]),
    seed=st.integers(0, 2**32 - 1),
)
def test_aggregates_are_exact_for_every_magnitude(magnitude: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = [int(v) for v in rng.integers(-(2**62), 2**62, size)]
    values = [v * magnitude // 2**62 for v in values]  # spread over (-magnitude, magnitude)
    check_all(values)


@pytest.mark.parametrize(
    ("value", "rows"),
    [
        (2**50, 20_000),  # sum in several int64 chunks (8191 rows each)
        (-(2**51), 9_000),  # the smallest chunk still summed in int64
        (2**51 + 1, 9_000),  # chunks would be too small: Python ints
        (2**25, 20_000),  # squares chunked
        (2**31 - 1, 5_000),  # variance's row bound: squares near 2**62, Python ints
        (2**21, 5_000),  # cubes near 2**63
        (INT64_MAX, 4),
        (INT64_MIN, 4),
    ],
)
def test_sums_beyond_int64_are_exact(value: int, rows: int) -> None:
    values = [value - (r % 3) if value > 0 else value + (r % 3) for r in range(rows)]
    check_all(values, [value // 2**40 % 1000 + r % 7 for r in range(rows)])


def test_int64_extremes_mixed_with_small_values() -> None:
    check_all([INT64_MAX, INT64_MIN, 0, -1, 1, INT64_MAX - 1, INT64_MIN + 1])
    check_all([INT64_MAX] * 3)  # 3 * (2**63 - 1) needs more than 64 bits
    check_all([2**64, -(2**80), 5])  # not even int64: Python ints throughout


def test_weighted_products_past_int64_fall_back_exactly() -> None:
    values = [2**40 + r for r in range(10_000)]
    weights = [2**23 + r for r in range(10_000)]  # products near 2**63
    check_all(values, weights)
    with pytest.raises(ValueError, match="differ in length"):
        aggregate.weighted_sums([1, 2], [1])


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.integers(-50, 50), st.integers(INT64_MIN, INT64_MAX)), max_size=40
    ),
    cuts=st.lists(st.integers(-60, 60), min_size=2, max_size=6, unique=True),
    shift=st.sampled_from([0, 2**62, -(2**63), 2**63, 2**70]),
    halves=st.booleans(),
)
def test_bin_counts_match_the_exact_reference(
    values: list[int], cuts: list[int], shift: int, halves: bool
) -> None:
    edges = [Fraction(c, 2 if halves else 1) + shift for c in sorted(cuts)]
    want = reference_bins(values, edges)
    assert aggregate.bin_counts(values, edges) == want
    assert aggregate.bin_counts(encode_column(values, 0, "v"), edges) == want


def test_bin_counts_at_the_int64_ends_and_on_the_last_edge() -> None:
    values = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, 10, INT64_MAX - 1]
    for edges in (
        [Fraction(INT64_MIN), Fraction(0), Fraction(10)],  # 10 sits on the closed last edge
        [Fraction(-(2**70)), Fraction(1, 2), Fraction(2**70)],
        [Fraction(INT64_MAX - 1), Fraction(2**64)],
        [Fraction(-(2**64)), Fraction(INT64_MIN)],
    ):
        assert aggregate.bin_counts(values, edges) == reference_bins(values, edges)
    with_max = [*values, INT64_MAX]  # the clipped thresholds need max + 1: Python ints
    edges = [Fraction(0), Fraction(INT64_MAX)]
    assert aggregate.bin_counts(with_max, edges) == reference_bins(with_max, edges)
    assert aggregate.bin_counts([], edges) == [0, 0]


def test_bin_counts_match_numpy_histogram_on_a_million_rows() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(-500, 10_500, 1_000_000)
    edges = list(range(0, 10_001, 1000))
    expected, _ = np.histogram(values, bins=np.array(edges, dtype=float))
    got = aggregate.bin_counts(values, [Fraction(e) for e in edges])
    assert got == [len(values), *expected.tolist()]


# encoding ------------------------------------------------------------------------------


def test_encoding_stays_int64_while_values_fit_and_is_exact_beyond() -> None:
    small = encode_column(np.array([1, -2, 3]), 2, "v")
    assert small.dtype == np.int64
    assert small.tolist() == [100, -200, 300]
    big = encode_column(np.array([INT64_MAX // 10, -5]), 2, "v")  # * 100 overflows int64
    assert big.dtype == object
    assert big.tolist() == [INT64_MAX // 10 * 100, -500]
    unsigned = encode_column(np.array([2**64 - 1, 0], dtype=np.uint64), 0, "v")
    assert unsigned.tolist() == [2**64 - 1, 0]
    assert encode_column([2**70, 1], 0, "v").tolist() == [2**70, 1]
    assert encode_column(np.array([1, 2], dtype=np.int32), 1, "v").tolist() == [10, 20]
    assert encode_column(iter([Decimal("1.5"), "2", 3]), 1, "v").tolist() == [15, 20, 30]
    assert scale_column(np.array([], dtype=np.int64), 3, "v") == []


def test_encoding_never_takes_bools_or_fractions_for_integers() -> None:
    for bad in ([1, True], [1, 2.5], np.array([True, False]), np.array([1.5, 2.0])):
        with pytest.raises(PtxError) as info:
            encode_column(bad, 0, "v")
        assert info.value.problems[0].field.startswith("v[")
    assert encode_column(np.array([1.0, 2.0]), 0, "v").tolist() == [1, 2]


def test_range_errors_name_the_first_offending_rows() -> None:
    values = np.zeros(100, dtype=np.int64)
    values[[3, 7, 50, 60, 70, 80, 90]] = 2**31
    with pytest.raises(PtxError) as info:
        encode_column(values, 0, "value", bound=2**31)
    fields = [p.field for p in info.value.problems]
    assert fields == ["value[3]", "value[7]", "value[50]", "value[60]", "value[70]"]
    assert info.value.status == 422
    encode_column(values, 0, "value", bound=2**31 + 1)  # just inside
    with pytest.raises(PtxError):
        encode_column([-(2**70)], 0, "value", bound=2**62)
    encode_column(np.array([INT64_MIN, INT64_MAX]), 0, "value", bound=2**63 + 1)
    with pytest.raises(PtxError):
        encode_column(np.array([INT64_MIN]), 0, "value", bound=2**63)


def test_encoded_columns_encode_once_and_give_what_plain_columns_give() -> None:
    rng = np.random.default_rng(11)
    raw = {
        "value": [str(Decimal(int(v)).scaleb(-2)) for v in rng.integers(-(10**6), 10**6, 500)],
        "weight": [int(w) for w in rng.integers(0, 100, 500)],
    }
    columns = EncodedColumns(raw)
    assert dict(columns) == raw
    first = columns.encoded("value", 2)
    assert columns.encoded("value", 2) is first
    assert columns.encoded("value", 3) is not first
    programs = [
        bind(name, "1.0.0", {"scale": 2, **extra})
        for name, extra in [
            ("sum", {}),
            ("mean", {}),
            ("variance", {}),
            ("weighted_mean", {}),
            ("histogram", {"edges": ["-5000", "0", "5000", "10000"]}),
            ("min", {}),
            ("max", {}),
        ]
    ]
    for program in programs:
        assert program.prepare(columns) == program.prepare(raw), program.name
    # the range check still applies to a cached encoding
    with pytest.raises(PtxError) as info:
        bind("variance", "1.0.0", {"scale": 2}).prepare(EncodedColumns({"value": ["3e7"]}))
    assert info.value.problems[0].field == "value[0]"
    with pytest.raises(PtxError) as info:
        bind("mean", "1.0.0").prepare(columns.__class__({"other": [1]}))
    assert info.value.problems[0].field == "columns.value"
