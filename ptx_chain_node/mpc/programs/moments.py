"""Decomposable programs on sums: count, sum, mean, variance, stddev, weighted mean.

Each input party shares ``[n, ...sums]`` of its own rows (:mod:`ptx_chain_node.mpc.aggregate`);
the MPC adds the vectors, evaluates the guard ``n >= k`` securely and divides where needed.
Every aggregate enters as an exact (integral) number, so ``n * sum x**2 - (sum x)**2`` is
exact and only the final division (and square root) round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc import aggregate
from ptx_chain_node.mpc.encoding import IntArray, descale
from ptx_chain_node.mpc.fields import FXP128, INT64, INT128
from ptx_chain_node.mpc.params import ProgramParams, spec
from ptx_chain_node.mpc.program import (
    Columns,
    Outcome,
    Precision,
    Program,
    Value,
    check_bound,
    column,
    encoded_column,
)
from ptx_chain_node.mpc.programs.arithmetic import at_least, divide, sqrt, total, wrap

#: Declared precision of mean, variance and weighted mean (after decimal descaling).
REAL = Precision(relative=2.0**-48, absolute=2.0**-48)
#: Declared precision of the standard deviation.
ROOT = Precision(relative=2.0**-40, absolute=2.0**-40)

_ROW_BOUND = 1 << 62  # mean, weighted mean
_VARIANCE_ROW_BOUND = 1 << 31  # variance and stddev, so that the variance stays below 2**62
_SUM_ROW_BOUND = 1 << 96
_WEIGHT_BOUND = 1 << 56  # total weight of one input party


@dataclass(frozen=True, kw_only=True)
class ValueParams(ProgramParams):
    """A program on one numeric column ``value`` with a decimal ``scale`` (0 = integers)."""

    scale: int = field(
        default=0, metadata=spec(ge=0, le=18, description="decimal places of the value column")
    )


@dataclass(frozen=True, kw_only=True)
class SpreadParams(ValueParams):
    """Variance and standard deviation (sample, ``n - 1``): need ``min_group_size >= 2``."""

    def rules(self) -> list[Problem]:
        if self.min_group_size < 2:
            return [Problem("min_group_size", "must be at least 2 for a sample variance")]
        return super().rules()


@dataclass(frozen=True, kw_only=True)
class WeightedParams(ValueParams):
    """Weighted mean: column ``value`` and non-negative column ``weight``."""

    weight_scale: int = field(
        default=0, metadata=spec(ge=0, le=18, description="decimal places of the weights")
    )


def _values(params: ValueParams, columns: Columns, bound: int) -> IntArray:
    return encoded_column(columns, "value", params.scale, bound)


def _fxp(values: list[int], power: int, scale: int) -> list[Value]:
    """Signed fixed-point results (64 fractional bits) to floats, undoing decimal scaling."""
    f = FXP128.frac_length
    return [float(Fraction(v, 1 << f) / 10 ** (scale * power)) for v in values]


def _one(name: str) -> Any:
    return lambda _params: [name]


def _fixed(length: int) -> Any:
    return lambda _params: length


# count ---------------------------------------------------------------------------------


def _prepare_count(params: ProgramParams, columns: Columns) -> list[int]:
    return [len(column(columns, "value"))]


async def _compute_count(
    rt: Any, stype: Any, params: ProgramParams, inputs: list[list[int]]
) -> Outcome:
    vectors = [wrap(stype, v) for v in inputs]
    n = total(rt, stype, vectors, 0)
    return Outcome([n], at_least(n, params.min_group_size))


COUNT = Program(
    name="count",
    version="1.0.0",
    summary="number of rows over all input parties",
    decomposable=True,
    columns=("value",),
    params=ProgramParams,
    stype=INT64,
    outputs="one integer",
    precision=None,
    prepare=_prepare_count,
    input_length=_fixed(1),
    compute=_compute_count,
    decode=lambda _p, values, _public: list(values),
    output_names=_one("count"),
)

# sum -----------------------------------------------------------------------------------


def _prepare_sum(params: ValueParams, columns: Columns) -> list[int]:
    return aggregate.moments(_values(params, columns, _SUM_ROW_BOUND), order=1)


async def _compute_sum(
    rt: Any, stype: Any, params: ValueParams, inputs: list[list[int]]
) -> Outcome:
    vectors = [wrap(stype, v) for v in inputs]
    n = total(rt, stype, vectors, 0)
    return Outcome([total(rt, stype, vectors, 1)], at_least(n, params.min_group_size))


SUM = Program(
    name="sum",
    version="1.0.0",
    summary="sum of the value column over all rows",
    decomposable=True,
    columns=("value",),
    params=ValueParams,
    stype=INT128,
    outputs="one exact number (int, or Decimal with the column's scale)",
    precision=None,
    prepare=_prepare_sum,
    input_length=_fixed(2),
    compute=_compute_sum,
    decode=lambda p, values, _public: [descale(values[0], p.scale)],
    output_names=_one("sum"),
)

# mean ----------------------------------------------------------------------------------


def _prepare_mean(params: ValueParams, columns: Columns) -> list[int]:
    return aggregate.moments(_values(params, columns, _ROW_BOUND), order=1)


async def _compute_mean(
    rt: Any, stype: Any, params: ValueParams, inputs: list[list[int]]
) -> Outcome:
    vectors = [wrap(stype, v) for v in inputs]
    n = total(rt, stype, vectors, 0)
    ok = at_least(n, params.min_group_size)
    n_safe = n + (1 - ok)  # never 0, so the division is defined even when refused
    return Outcome([divide(rt, total(rt, stype, vectors, 1), n_safe)], ok)


MEAN = Program(
    name="mean",
    version="1.0.0",
    summary="arithmetic mean of the value column",
    decomposable=True,
    columns=("value",),
    params=ValueParams,
    stype=FXP128,
    outputs="one float",
    precision=REAL,
    prepare=_prepare_mean,
    input_length=_fixed(2),
    compute=_compute_mean,
    decode=lambda p, values, _public: _fxp(values, 1, p.scale),
    output_names=_one("mean"),
)

# variance and standard deviation -------------------------------------------------------


def _prepare_spread(params: SpreadParams, columns: Columns) -> list[int]:
    return aggregate.moments(_values(params, columns, _VARIANCE_ROW_BOUND), order=2)


def _variance(rt: Any, stype: Any, params: SpreadParams, inputs: list[list[int]]) -> Outcome:
    vectors = [wrap(stype, v) for v in inputs]
    n, s1, s2 = (total(rt, stype, vectors, j) for j in range(3))
    ok = at_least(n, params.min_group_size)
    numerator = n * s2 - s1 * s1  # exact: all three are integral
    denominator = n * (n - 1) + (1 - ok)
    return Outcome([divide(rt, numerator, denominator)], ok)


async def _compute_variance(
    rt: Any, stype: Any, params: SpreadParams, inputs: list[list[int]]
) -> Outcome:
    return _variance(rt, stype, params, inputs)


async def _compute_stddev(
    rt: Any, stype: Any, params: SpreadParams, inputs: list[list[int]]
) -> Outcome:
    outcome = _variance(rt, stype, params, inputs)
    return Outcome([sqrt(rt, outcome.values[0])], outcome.ok)


VARIANCE = Program(
    name="variance",
    version="1.0.0",
    summary="sample variance (n - 1) of the value column",
    decomposable=True,
    columns=("value",),
    params=SpreadParams,
    stype=FXP128,
    outputs="one float",
    precision=REAL,
    prepare=_prepare_spread,
    input_length=_fixed(3),
    compute=_compute_variance,
    decode=lambda p, values, _public: _fxp(values, 2, p.scale),
    output_names=_one("variance"),
)

STDDEV = Program(
    name="stddev",
    version="1.0.0",
    summary="sample standard deviation (n - 1) of the value column",
    decomposable=True,
    columns=("value",),
    params=SpreadParams,
    stype=FXP128,
    outputs="one float",
    precision=ROOT,
    prepare=_prepare_spread,
    input_length=_fixed(3),
    compute=_compute_stddev,
    decode=lambda p, values, _public: _fxp(values, 1, p.scale),
    output_names=_one("stddev"),
)

# weighted mean -------------------------------------------------------------------------


def _prepare_weighted(params: WeightedParams, columns: Columns) -> list[int]:
    values = _values(params, columns, _ROW_BOUND)
    weights = encoded_column(columns, "weight", params.weight_scale, _WEIGHT_BOUND)
    if weights.size and weights.min() < 0:
        raise PtxError("weights must be non-negative", 422, [Problem("weight", "negative")])
    try:
        out = aggregate.weighted_sums(values, weights)
    except ValueError as exc:
        raise PtxError(str(exc), 422, [Problem("weight", str(exc))]) from None
    check_bound(out[1:2], _WEIGHT_BOUND, "weight")
    return out


async def _compute_weighted(
    rt: Any, stype: Any, params: WeightedParams, inputs: list[list[int]]
) -> Outcome:
    vectors = [wrap(stype, v) for v in inputs]
    n, weight, weighted = (total(rt, stype, vectors, j) for j in range(3))
    ok = at_least(n, params.min_group_size) * (weight >= 1)
    return Outcome([divide(rt, weighted, weight + (1 - ok))], ok)


WEIGHTED_MEAN = Program(
    name="weighted_mean",
    version="1.0.0",
    summary="sum(w * x) / sum(w) over the value and weight columns",
    decomposable=True,
    columns=("value", "weight"),
    params=WeightedParams,
    stype=FXP128,
    outputs="one float",
    precision=REAL,
    prepare=_prepare_weighted,
    input_length=_fixed(3),
    compute=_compute_weighted,
    decode=lambda p, values, _public: _fxp(values, 1, p.scale),
    output_names=_one("weighted_mean"),
)

PROGRAMS: list[Program[Any]] = [COUNT, SUM, MEAN, VARIANCE, STDDEV, WEIGHTED_MEAN]

__all__ = ["PROGRAMS", "SpreadParams", "ValueParams", "WeightedParams"]
