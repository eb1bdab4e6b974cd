"""The coordination programs the ``carbynestack`` engine runs, as template activations.

A collaboration's program (a coordination catalogue entry) becomes one activation of an
MP-SPDZ template (:mod:`~.templates`) per selected input column:

- ``sum`` and ``mean`` (parameter ``columns``, default every column);
- ``histogram`` (:data:`HISTOGRAM_PROGRAM`: ``edges``, integers in the column's encoded
  units, and ``columns``); register it with the coordinator's program registry.

``mean`` is fixed point (16 fractional bits, 28 integer bits) and MP-SPDZ does not notice
an overflow of its sum, so a mean column needs ``min`` and ``max`` in the input
specification and ``rows * max |encoded value|`` must stay below ``2**27``
(:meth:`Step.check_range`). :func:`result_values` decodes a result secret.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from typing import Any

from ptx_chain_node.carbynestack.encoding import from_fixed
from ptx_chain_node.carbynestack.templates import DEFAULT_FRAC_BITS, MAX_BINS, MAX_FIXED_BITS
from ptx_chain_node.coordination.collaboration import (
    Collaboration,
    ColumnSpec,
    ColumnType,
    InputSpec,
)
from ptx_chain_node.coordination.programs import ProgramDefinition
from ptx_chain_node.errors import Problem, PtxError

#: Coordination programs the engine runs (each with the template of the same name).
PROGRAMS = ("sum", "mean", "histogram")
#: The mean template's fixed point: 16 fractional bits and the widest integer part.
_MEAN_PARAMS = {"frac_bits": DEFAULT_FRAC_BITS, "int_bits": MAX_FIXED_BITS - DEFAULT_FRAC_BITS}


def _check_histogram(parameters: dict[str, Any], spec: InputSpec) -> list[Problem]:
    problems = [
        Problem(f"program.parameters.{key}", "unknown parameter")
        for key in parameters
        if key not in ("edges", "columns")
    ]
    edges = parameters.get("edges")
    if (
        not isinstance(edges, list)
        or not 2 <= len(edges) <= MAX_BINS + 1
        or any(isinstance(e, bool) or not isinstance(e, int) for e in edges)
        or any(b <= a for a, b in pairwise(edges))
    ):
        problems.append(
            Problem(
                "program.parameters.edges",
                f"2 to {MAX_BINS + 1} strictly increasing integers (encoded column units)",
            )
        )
    names = parameters.get("columns")
    known = {c.name for c in spec.columns}
    if names is not None and (
        not isinstance(names, list) or not names or not all(n in known for n in names)
    ):
        problems.append(
            Problem("program.parameters.columns", "a non-empty list of input column names")
        )
    return problems


#: The histogram as a coordination program (register it with the program registry).
HISTOGRAM_PROGRAM = ProgramDefinition(
    "histogram",
    "1",
    "Counts of each selected column's values per public bin [edges[j], edges[j+1])",
    "one vector of len(edges) - 1 counts per column",
    _check_histogram,
)


@dataclass(frozen=True)
class Step:
    """One activation of a run: a template on one column of every input party."""

    column: int
    name: str
    template: str
    params: dict[str, Any]
    bound: int | None = None  # mean: largest |encoded value| of the column

    def check_range(self, rows: int) -> None:
        """Refuse a mean whose sum could leave the sfix range (MP-SPDZ would not notice)."""
        if self.bound is None:
            return
        limit = 1 << (int(self.params["int_bits"]) - 1)
        if self.bound * rows >= limit:
            message = (
                f"mean of column {self.name}: {rows} values of magnitude up to {self.bound}"
                f" may sum past the fixed-point range (2^{limit.bit_length() - 1})"
            )
            raise PtxError(message, 422, [Problem("rows", message)])


def steps(collaboration: Collaboration) -> list[Step]:
    """The activations of the collaboration's program, one per selected column."""
    program = collaboration.program
    if program.name not in PROGRAMS:
        message = (
            f"program {program.name} is not available on engine carbynestack"
            f" (available: {', '.join(PROGRAMS)})"
        )
        raise PtxError(message, 422, [Problem("program", message)])
    columns = [c.name for c in collaboration.input_specification.columns]
    selected = program.parameters.get("columns") or columns
    if program.name == "histogram":
        edges = program.parameters.get("edges")
        return [Step(columns.index(n), n, "histogram", {"edges": edges}) for n in selected]
    if program.name == "sum":
        return [Step(columns.index(n), n, "sum", {}) for n in selected]
    steps = []
    for name in selected:
        spec = collaboration.input_specification.columns[columns.index(name)]
        steps.append(Step(columns.index(name), name, "mean", dict(_MEAN_PARAMS), _bound(spec)))
    return steps


def _bound(spec: ColumnSpec) -> int:
    """The largest magnitude of a column's encoded values (mean needs a bounded column)."""
    if spec.type is ColumnType.CATEGORICAL:
        return len(spec.categories or []) - 1
    if spec.min is None or spec.max is None:
        message = (
            f"column {spec.name}: mean on engine carbynestack needs min and max"
            " (the fixed-point sum must not overflow)"
        )
        raise PtxError(message, 422, [Problem("input_specification.columns", message)])
    scale: int = 10 ** (spec.scale or 0)
    return math.ceil(max(abs(spec.min), abs(spec.max)) * scale)


def result_values(program: str, values: Sequence[int]) -> list[int] | list[Fraction]:
    """Decode a result secret's signed values (``CarbyneStackClient.read``) for ``program``:
    ``mean`` yields exact fractions (fixed point, 16 fractional bits), the others integers."""
    if program == "mean":
        return [from_fixed(v, DEFAULT_FRAC_BITS) for v in values]
    return list(values)
