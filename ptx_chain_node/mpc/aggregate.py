"""Pre-aggregation: one input party's encoded rows reduced to the aggregates a program needs.

For a *decomposable* program each input party computes these aggregates on its own rows in
the clear, and only the aggregate vector is secret-shared; the MPC then combines a handful
of numbers per party instead of every row. All functions take encoded integer columns (see
:mod:`ptx_chain_node.mpc.encoding`) and return exact integer vectors whose first entry is
always the party's row count ``n`` (the group-size guard runs on the total of those).

Timings on one core for 100k rows: moments about 10 ms, bin counts about 60 ms.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from fractions import Fraction
from math import ceil, floor


def moments(values: Sequence[int], order: int = 2) -> list[int]:
    """``[n, sum x, sum x**2, ..., sum x**order]``."""
    out = [len(values), sum(values)]
    if order >= 2:
        out.append(sum(v * v for v in values))
    for k in range(3, order + 1):
        out.append(sum(v**k for v in values))
    return out


def weighted_sums(values: Sequence[int], weights: Sequence[int]) -> list[int]:
    """``[n, sum w, sum w*x]`` for two columns of equal length."""
    if len(values) != len(weights):
        raise ValueError("value and weight columns differ in length")
    return [len(values), sum(weights), sum(w * v for v, w in zip(values, weights, strict=True))]


def bin_counts(values: Sequence[int], edges: Sequence[Fraction]) -> list[int]:
    """``[n, c_0, ..., c_{B-1}]`` for ``B = len(edges) - 1`` bins, numpy.histogram semantics.

    Bin ``j`` is ``edges[j] <= x < edges[j+1]``; the last bin also includes its right edge.
    Values outside ``[edges[0], edges[-1]]`` fall into no bin but still count in ``n``.
    """
    bins = len(edges) - 1
    # x >= e  <=>  x >= ceil(e) for integer x, so integer thresholds give the same bins.
    lows = [ceil(e) for e in edges]
    top = floor(edges[-1])
    counts = [0] * bins
    for v in values:
        j = bisect.bisect_right(lows, v) - 1
        if 0 <= j < bins:
            counts[j] += 1
        elif j == bins and v <= top:
            counts[bins - 1] += 1
    return [len(values), *counts]


def extreme(values: Sequence[int], largest: bool, empty: int) -> list[int]:
    """``[n, min x]`` (or ``max`` with ``largest``); ``empty`` stands in when there are no rows."""
    if not values:
        return [0, empty]
    return [len(values), max(values) if largest else min(values)]
