"""What a catalogue program is: its declaration, its parameters and what it computes.

A :class:`Program` is plain data plus four functions:

- ``prepare(params, columns)``: on the input party's side, its rows (encoded columns) to
  the integer vector that gets shared: the aggregates for a decomposable program, the
  encoded rows for a row-level one;
- ``compute(runtime, sectype, params, inputs)``: inside MPyC, one list of secure numbers
  per input party to an :class:`Outcome` (secure outputs, the secure group-size guard bit
  and public facts);
- ``decode(params, values, public)``: on the output party's side, the recombined signed
  integers to result values.

Programs never come from outside: they are looked up by name and version in
:mod:`ptx_chain_node.mpc.catalogue`, which also pins them by hash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.encoding import EncodedColumns, IntArray, encode_column
from ptx_chain_node.mpc.fields import SecureType
from ptx_chain_node.mpc.params import ProgramParams

Value = int | Decimal | float
Columns = Mapping[str, Sequence[object]]


P = TypeVar("P", bound=ProgramParams)


@dataclass(frozen=True)
class Precision:
    """Declared accuracy of a real output: ``|got - exact| <= absolute + relative * |exact|``."""

    relative: float
    absolute: float

    def admits(self, got: float, exact: float) -> bool:
        """Whether ``got`` is within this precision of ``exact``."""
        return abs(got - exact) <= self.absolute + self.relative * abs(exact)


@dataclass
class Outcome:
    """What a program's MPC part returns: secure outputs, guard bit, public facts."""

    values: list[Any]
    ok: Any
    public: dict[str, int] = field(default_factory=dict)


Compute = Callable[[Any, Any, P, list[list[int]]], Awaitable[Outcome]]


@dataclass(frozen=True)
class Program(Generic[P]):
    """One vetted program of the catalogue (see the module docstring)."""

    name: str
    version: str
    summary: str
    decomposable: bool
    columns: tuple[str, ...]
    params: type[P]
    stype: SecureType
    outputs: str
    precision: Precision | None
    prepare: Callable[[P, Columns], list[int]]
    input_length: Callable[[P], int | None]
    compute: Compute[P]
    decode: Callable[[P, list[int], Mapping[str, int]], list[Value]]
    output_names: Callable[[P], list[str]]


def column(columns: Columns, name: str) -> Sequence[object]:
    """The column ``name`` of an input party's data (a :class:`PtxError` if missing)."""
    try:
        return columns[name]
    except KeyError:
        raise PtxError(
            f"missing input column {name!r}", 422, [Problem(f"columns.{name}", "missing")]
        ) from None


def encoded_column(columns: Columns, name: str, scale: int, bound: int) -> IntArray:
    """Column ``name`` encoded with ``scale`` and checked against ``bound`` (see
    :func:`~.encoding.encode_column`); an :class:`~.encoding.EncodedColumns` encodes it once
    for all the programs it is given to."""
    values = column(columns, name)
    if isinstance(columns, EncodedColumns):
        return columns.encoded(name, scale, bound)
    return encode_column(values, scale, name, bound)


def check_bound(values: Sequence[int], bound: int, what: str) -> None:
    """Refuse aggregates outside ``(-bound, bound)`` (the program's declared range)."""
    for value in values:
        if not -bound < value < bound:
            raise PtxError(
                f"{what} is outside the program's range",
                422,
                [Problem(what, f"must stay below 2**{bound.bit_length() - 1} in magnitude")],
            )
