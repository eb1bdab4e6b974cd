"""Program parameters: declared, typed fields read from JSON, with bounds and rules.

A program's parameters are a frozen dataclass deriving from :class:`ProgramParams`; each
field is a ``dataclasses.field`` whose metadata :func:`spec` gives (bounds, description).
Three field types exist, written as string annotations (``from __future__ import
annotations``): ``int``, ``Decimal`` and ``list[Decimal]``. :meth:`ProgramParams.parse` reads a JSON
object leniently (``"5"`` or ``5.0`` for an int; an int, float or string for a decimal),
refuses unknown names, checks bounds and then the class's own :meth:`~ProgramParams.rules`;
every problem is a :class:`~ptx_chain_node.errors.Problem` on ``params.<field>``.
:meth:`~ProgramParams.to_json` gives the canonical JSON form that the program hash pins.

This is plain Python on purpose: every MPC party process validates the parameters of the
programs it runs before it starts, and a validation library would double the import time
that sits on the critical path of every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Self

from ptx_chain_node.errors import Problem, PtxError


def spec(
    *,
    ge: int | None = None,
    le: int | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    description: str = "",
) -> dict[str, Any]:
    """A parameter field's metadata: its bounds and what it means."""
    bounds = {"ge": ge, "le": le, "min_length": min_length, "max_length": max_length}
    return {"bounds": bounds, "description": description}


def _integer(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal | str):
        number = _decimal(value)
        if number == number.to_integral_value():
            return int(number)
    raise ValueError("must be an integer")


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("must be a decimal number") from None
    if isinstance(value, int):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        raise ValueError("must be a number")
    if not value.is_finite():
        raise ValueError("must be finite")
    return value


def _decimals(value: object) -> list[Decimal]:
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of numbers")
    out = []
    for i, item in enumerate(value):
        try:
            out.append(_decimal(item))
        except ValueError as exc:
            raise ValueError(f"item {i} {exc}") from None
    return out


#: How each declared field type is read from JSON.
_READERS: dict[str, Callable[[object], Any]] = {
    "int": _integer,
    "Decimal": _decimal,
    "list[Decimal]": _decimals,
}


def _bound_problem(value: Any, bounds: Mapping[str, int | None]) -> str | None:
    ge, le = bounds["ge"], bounds["le"]
    if ge is not None and value < ge:
        return f"must be at least {ge}"
    if le is not None and value > le:
        return f"must be at most {le}"
    shortest, longest = bounds["min_length"], bounds["max_length"]
    if shortest is not None and len(value) < shortest:
        return f"needs at least {shortest} items"
    if longest is not None and len(value) > longest:
        return f"takes at most {longest} items"
    return None


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProgramParams:
    """Parameters every program has: the minimum group size ``k`` of the output guard."""

    min_group_size: int = dataclasses.field(
        default=5,
        metadata=spec(
            ge=1, description="refuse to output when fewer rows (or set members) contributed"
        ),
    )

    def rules(self) -> list[Problem]:
        """Rules across fields, checked after types and bounds (subclasses extend them)."""
        return []

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Self:
        """Read parameters from a JSON object (:class:`PtxError` 422 naming every problem)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        problems = [Problem(f"params.{k}", "unknown parameter") for k in doc if k not in fields]
        values: dict[str, Any] = {}
        for name, field in fields.items():
            if name not in doc:
                if field.default is dataclasses.MISSING:
                    problems.append(Problem(f"params.{name}", "missing"))
                continue
            try:
                value = _READERS[str(field.type)](doc[name])
            except ValueError as exc:
                problems.append(Problem(f"params.{name}", str(exc)))
                continue
            problem = _bound_problem(value, field.metadata["bounds"])
            if problem is not None:
                problems.append(Problem(f"params.{name}", problem))
            values[name] = value
        if not problems:
            params = cls(**values)
            problems = [Problem(f"params.{p.field}", p.problem) for p in params.rules()]
        if problems:
            raise PtxError("invalid parameters", 422, problems)
        return params

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form: every field, decimals as strings."""
        return {f.name: _json(getattr(self, f.name)) for f in dataclasses.fields(self)}
