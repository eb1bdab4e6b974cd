"""The programs a collaboration may run, by catalogue name and version.

A program is never source code sent by a creator: it is a catalogue entry. Its canonical
form (name, version, parameters and the catalogue's description) is hashed with sha256; input
parties approve that hash, and a run never starts on a hash a counted party did not approve.

:class:`ProgramRegistry` is the interface the MPC catalogue plugs into;
:class:`StaticProgramRegistry` holds a few built-in statistics until it lands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ptx_chain_node.coordination.collaboration import ColumnType, InputSpec, Program, ProgramRef
from ptx_chain_node.errors import Problem, PtxError


def canonical_json(value: Any) -> bytes:
    """The canonical JSON encoding hashed for programs (sorted keys, no spaces, UTF-8)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def program_sha256(name: str, version: str, parameters: dict[str, Any], description: Any) -> str:
    """sha256 (hex) of a program's canonical form."""
    canonical = {
        "name": name,
        "version": version,
        "parameters": parameters,
        "description": description,
    }
    return hashlib.sha256(canonical_json(canonical)).hexdigest()


class ProgramRegistry(Protocol):
    """Resolves a catalogue reference against an input specification."""

    def resolve(self, ref: ProgramRef, spec: InputSpec) -> Program:
        """The program with its description and hash; PtxError 422 when unknown or unfit."""
        ...


Checker = Callable[[dict[str, Any], InputSpec], list[Problem]]


def _numeric_columns(parameters: dict[str, Any], spec: InputSpec) -> list[Problem]:
    problems = [
        Problem(f"program.parameters.{key}", "unknown parameter")
        for key in parameters
        if key != "columns"
    ]
    names = parameters.get("columns")
    selected = spec.columns
    if names is not None:
        known = {c.name: c for c in spec.columns}
        if not isinstance(names, list) or not names or not all(n in known for n in names):
            problems.append(
                Problem("program.parameters.columns", "a non-empty list of input column names")
            )
            return problems
        selected = [known[n] for n in names]
    problems += [
        Problem("input_specification.columns", f"{c.name}: the program needs numeric columns")
        for c in selected
        if c.type is ColumnType.CATEGORICAL
    ]
    return problems


def _no_parameters(parameters: dict[str, Any], _spec: InputSpec) -> list[Problem]:
    return [Problem(f"program.parameters.{key}", "unknown parameter") for key in parameters]


@dataclass(frozen=True)
class ProgramDefinition:
    """A catalogue entry: what the program computes and how its parameters are checked."""

    name: str
    version: str
    summary: str
    output: str
    check: Checker = field(default=_no_parameters, compare=False)

    def description(self) -> dict[str, Any]:
        return {"summary": self.summary, "output": self.output}


BUILTIN_PROGRAMS = (
    ProgramDefinition(
        "sum",
        "1",
        "Sum of each numeric column over all parties' rows",
        "one value per column",
        _numeric_columns,
    ),
    ProgramDefinition(
        "mean",
        "1",
        "Mean of each numeric column over all parties' rows (rounded)",
        "one value per column",
        _numeric_columns,
    ),
    ProgramDefinition("count", "1", "Number of rows over all parties", "one value"),
)


class StaticProgramRegistry:
    """A fixed set of program definitions (the built-ins unless told otherwise)."""

    def __init__(self, definitions: Iterable[ProgramDefinition] = BUILTIN_PROGRAMS) -> None:
        self._definitions = {(d.name, d.version): d for d in definitions}

    def register(self, definition: ProgramDefinition) -> None:
        """Add (or replace) one definition."""
        self._definitions[(definition.name, definition.version)] = definition

    def names(self) -> list[tuple[str, str]]:
        """The (name, version) pairs known."""
        return sorted(self._definitions)

    def resolve(self, ref: ProgramRef, spec: InputSpec) -> Program:
        definition = self._definitions.get((ref.name, ref.version))
        if definition is None:
            known = ", ".join(f"{n}@{v}" for n, v in self.names())
            message = f"unknown program {ref.name}@{ref.version} (known: {known})"
            raise PtxError(message, 422, [Problem("program", message)])
        problems = definition.check(ref.parameters, spec)
        if problems:
            raise PtxError("program does not fit the input specification", 422, problems)
        description = definition.description()
        digest = program_sha256(ref.name, ref.version, ref.parameters, description)
        return Program(
            name=ref.name,
            version=ref.version,
            parameters=ref.parameters,
            description=description,
            sha256=digest,
        )
