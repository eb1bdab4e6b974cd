"""Programs on the order of values: histogram, min, max, median and quantile.

``histogram`` counts rows per public bin on each input party and sums the counts securely.
``min``/``max`` compare the input parties' local extremes securely (one comparison per party).
``median``/``quantile`` are row-level: every encoded row is shared, the MPC sorts all rows
obliviously (vectorised Batcher sort) and combines the two order statistics around
``q * (N - 1)`` (numpy's default "linear" method) into an exact rational result. The row
count ``N`` is public for row-level programs (it is the length of the shared vectors), so
their guard ``N >= k`` is evaluated on the public count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from math import floor
from typing import Any

from ptx_chain_node.errors import Problem
from ptx_chain_node.mpc import aggregate
from ptx_chain_node.mpc.encoding import IntArray, descale, scale_column, scale_edge
from ptx_chain_node.mpc.fields import INT64
from ptx_chain_node.mpc.params import spec
from ptx_chain_node.mpc.program import (
    Columns,
    Outcome,
    Precision,
    Program,
    Value,
    column,
    encoded_column,
)
from ptx_chain_node.mpc.programs.arithmetic import at_least, total, wrap
from ptx_chain_node.mpc.programs.moments import ValueParams

#: Rows of min, max, median and quantile: |encoded value| below 2**62 (64-bit comparisons).
_ROW_BOUND = 1 << 62
_MAX_BINS = 1000
#: Order statistics are exact rationals, rounded once to a float.
RATIONAL = Precision(relative=2.0**-52, absolute=0.0)


@dataclass(frozen=True, kw_only=True)
class HistogramParams(ValueParams):
    """Public, strictly increasing bin edges (numpy.histogram semantics)."""

    edges: list[Decimal] = field(
        metadata=spec(min_length=2, max_length=_MAX_BINS + 1, description="increasing bin edges")
    )

    def rules(self) -> list[Problem]:
        if any(b <= a for a, b in pairwise(self.edges)):
            return [Problem("edges", "edges must be strictly increasing")]
        return super().rules()


@dataclass(frozen=True, kw_only=True)
class QuantileParams(ValueParams):
    """The quantile ``q`` in ``[0, 1]`` (a decimal; 0.5 is the median)."""

    q: Decimal = field(metadata=spec(ge=0, le=1, description="the quantile, in [0, 1]"))


def _rows(params: ValueParams, columns: Columns) -> list[int]:
    return scale_column(column(columns, "value"), params.scale, "value", _ROW_BOUND)


def _encoded(params: ValueParams, columns: Columns) -> IntArray:
    return encoded_column(columns, "value", params.scale, _ROW_BOUND)


# histogram -----------------------------------------------------------------------------


def _prepare_histogram(params: HistogramParams, columns: Columns) -> list[int]:
    edges = [scale_edge(e, params.scale) for e in params.edges]
    return aggregate.bin_counts(_encoded(params, columns), edges)


async def _compute_histogram(
    rt: Any, stype: Any, params: HistogramParams, inputs: list[list[int]]
) -> Outcome:
    vectors = [wrap(stype, v) for v in inputs]
    n = total(rt, stype, vectors, 0)
    counts = [total(rt, stype, vectors, j) for j in range(1, len(params.edges))]
    return Outcome(counts, at_least(n, params.min_group_size))


def _bin_names(params: HistogramParams) -> list[str]:
    edges = params.edges
    names = [f"[{a}, {b})" for a, b in pairwise(edges[:-1])]
    return [*names, f"[{edges[-2]}, {edges[-1]}]"]


HISTOGRAM = Program(
    name="histogram",
    version="1.0.0",
    summary="row counts per public bin of the value column",
    decomposable=True,
    columns=("value",),
    params=HistogramParams,
    stype=INT64,
    outputs="one integer per bin (len(edges) - 1)",
    precision=None,
    prepare=_prepare_histogram,
    input_length=lambda p: len(p.edges),
    compute=_compute_histogram,
    decode=lambda _p, values, _public: list(values),
    output_names=_bin_names,
)

# min and max ---------------------------------------------------------------------------


def _extreme_program(largest: bool) -> Program[ValueParams]:
    empty = -_ROW_BOUND if largest else _ROW_BOUND  # loses every comparison

    def prepare(params: ValueParams, columns: Columns) -> list[int]:
        return aggregate.extreme(_encoded(params, columns), largest, empty)

    async def compute(rt: Any, stype: Any, params: ValueParams, inputs: list[list[int]]) -> Outcome:
        vectors = [wrap(stype, v) for v in inputs]
        n = total(rt, stype, vectors, 0)
        local = [vector[1] for vector in vectors]
        best = rt.max(local) if largest else rt.min(local)
        return Outcome([best], at_least(n, params.min_group_size))

    name = "max" if largest else "min"
    return Program(
        name=name,
        version="1.0.0",
        summary=f"{'largest' if largest else 'smallest'} value, from each party's local {name}",
        decomposable=True,
        columns=("value",),
        params=ValueParams,
        stype=INT64,
        outputs="one exact number (int, or Decimal with the column's scale)",
        precision=None,
        prepare=prepare,
        input_length=lambda _p: 2,
        compute=compute,
        decode=lambda p, values, _public: [descale(values[0], p.scale)],
        output_names=lambda _p: [name],
    )


MIN = _extreme_program(largest=False)
MAX = _extreme_program(largest=True)

# median and quantile -------------------------------------------------------------------


def _order_statistics(rt: Any, stype: Any, rows: list[int], q: Fraction) -> tuple[Any, int]:
    """``(X, d)`` with ``X / d`` the linear-interpolation ``q``-quantile of the rows."""
    from mpyc.numpy import np

    n = len(rows)
    h = q * (n - 1)
    lo = floor(h)
    g = h - lo
    hi = min(lo + 1, n - 1)
    array = stype.array(stype.field.array(np.array(rows, dtype=object)))
    ordered = rt.np_sort(array)
    x_lo, x_hi = ordered[lo], ordered[hi]
    return x_lo * (g.denominator - g.numerator) + x_hi * g.numerator, g.denominator


def _quantile_program(name: str, params_type: type[Any], q_of: Any) -> Program[Any]:
    def prepare(params: ValueParams, columns: Columns) -> list[int]:
        return _rows(params, columns)

    async def compute(rt: Any, stype: Any, params: Any, inputs: list[list[int]]) -> Outcome:
        rows = [v for vector in inputs for v in vector]
        if len(rows) < params.min_group_size:  # public count: refuse without computing
            return Outcome([stype(0)], stype(0), {"divisor": 1})
        value, divisor = _order_statistics(rt, stype, rows, q_of(params))
        return Outcome([value], stype(1), {"divisor": divisor})

    def decode(params: Any, values: list[int], public: Mapping[str, int]) -> list[Value]:
        exact = Fraction(values[0], public["divisor"] * 10**params.scale)
        return [float(exact)]

    return Program(
        name=name,
        version="1.0.0",
        summary=f"{name} of the value column (linear interpolation, as numpy); row-level",
        decomposable=False,
        columns=("value",),
        params=params_type,
        stype=INT64,
        outputs="one float (an exact rational rounded once)",
        precision=RATIONAL,
        prepare=prepare,
        input_length=lambda _p: None,
        compute=compute,
        decode=decode,
        output_names=lambda _p: [name],
    )


MEDIAN = _quantile_program("median", ValueParams, lambda _p: Fraction(1, 2))
QUANTILE = _quantile_program("quantile", QuantileParams, lambda p: Fraction(p.q))

PROGRAMS: list[Program[Any]] = [HISTOGRAM, MIN, MAX, MEDIAN, QUANTILE]
