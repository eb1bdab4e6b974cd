"""The MPC catalogue as the coordinator's program registry.

A collaboration names a catalogue program (``mean`` ``1.0.0``...) and its parameters; the
parameters may also carry ``columns``, mapping the program's columns (``value``,
``weight``, ``id``) to columns of the input specification (by default the same names).
:class:`CatalogueRegistry` checks the program against the specification (every program
column exists and has a fitting type and scale), binds it (parameter validation and the
catalogue hash) and describes it; names it does not know go to a fallback registry (the
coordinator's built-in statistics). :func:`binding` gives engines and clients the bound
program and the column mapping back from a collaboration's program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ptx_chain_node.coordination.collaboration import (
    ColumnSpec,
    ColumnType,
    InputSpec,
    Program,
    ProgramRef,
)
from ptx_chain_node.coordination.programs import (
    ProgramRegistry,
    StaticProgramRegistry,
    program_sha256,
)
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc import catalogue
from ptx_chain_node.mpc.catalogue import BoundProgram

#: Programs that may count or bin category indices.
_CATEGORICAL_OK = frozenset({"count", "histogram", "psi_cardinality"})
#: The scale parameter of each program column.
_SCALE_PARAMETER = {"value": "scale", "weight": "weight_scale"}


@dataclass(frozen=True)
class Binding:
    """A catalogue program bound to its parameters, and program column -> input column."""

    bound: BoundProgram
    columns: dict[str, str]


def _split(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    params = {k: v for k, v in parameters.items() if k != "columns"}
    return params, parameters.get("columns")


def binding(name: str, version: str, parameters: Mapping[str, Any]) -> Binding:
    """Bind a collaboration's program (PtxError when unknown or invalid)."""
    params, mapping = _split(parameters)
    bound = catalogue.bind(name, version, params)
    columns = {c: c for c in bound.program.columns}
    if mapping is not None:
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise PtxError(
                "columns must map program columns to input columns",
                422,
                [Problem("program.parameters.columns", "an object of column names")],
            )
        unknown = sorted(set(mapping) - set(columns))
        if unknown:
            raise PtxError(
                "unknown program columns",
                422,
                [
                    Problem(f"program.parameters.columns.{k}", "not a column of the program")
                    for k in unknown
                ],
            )
        columns.update(mapping)
    return Binding(bound, columns)


def _check_column(
    bound: BoundProgram, program_column: str, column: ColumnSpec | None, source: str
) -> list[Problem]:
    where = f"program.parameters.columns.{program_column}"
    if column is None:
        return [Problem(where, f"input column {source!r} is not in the input specification")]
    if column.type is ColumnType.CATEGORICAL:
        if bound.name not in _CATEGORICAL_OK:
            return [Problem(where, f"{bound.name} needs a numeric column, {source!r} is not")]
        return []
    scale_name = _SCALE_PARAMETER.get(program_column)
    scale = getattr(bound.params, scale_name, 0) if scale_name else 0
    if column.type is ColumnType.FIXED and (column.scale or 0) > scale:
        return [
            Problem(
                f"program.parameters.{scale_name}",
                f"column {source!r} has {column.scale} decimals; the program's scale is {scale}",
            )
        ]
    return []


class CatalogueRegistry:
    """Resolves catalogue programs; everything else goes to ``fallback``."""

    def __init__(self, fallback: ProgramRegistry | None = None) -> None:
        self.fallback = fallback or StaticProgramRegistry()

    def resolve(self, ref: ProgramRef, spec: InputSpec) -> Program:
        if (ref.name, ref.version) not in catalogue.CATALOGUE:
            return self.fallback.resolve(ref, spec)
        found = binding(ref.name, ref.version, ref.parameters)
        by_name = {c.name: c for c in spec.columns}
        problems = []
        for program_column, source in found.columns.items():
            problems += _check_column(found.bound, program_column, by_name.get(source), source)
        if problems:
            raise PtxError("program does not fit the input specification", 422, problems)
        description = {**found.bound.describe(), "column_mapping": found.columns}
        return Program(
            name=ref.name,
            version=ref.version,
            parameters=ref.parameters,
            description=description,
            sha256=program_sha256(ref.name, ref.version, ref.parameters, description),
        )
