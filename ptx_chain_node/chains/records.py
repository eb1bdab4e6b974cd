"""A thread's JSON records as typed columns, by the chain configuration's input mapping.

Pure functions. Each column's value is read at its dotted field path (``a.b.0.c``) in a
record and typed by :func:`ptx_chain_node.mpc.rows.cell` (integer, fixed, categorical,
bounds). A bad row is refused (every problem named by thread, row and field, values never
shown) or skipped, as configured; the row limits apply to what remains.

Large threads take a columnar path first: each column is pulled out of all records in one
pass and checked as a whole (every value an ``int`` within the bounds, or a listed
category...). Only when that finds something it does not accept does the row-by-row path
(:func:`typed_rows_by_row`) run, which gives the same columns for good rows and names the
problems; both give the same result for any input.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ptx_chain_node.chains.config import InputMapping
from ptx_chain_node.coordination.collaboration import ColumnSpec, ColumnType
from ptx_chain_node.errors import Problem
from ptx_chain_node.mpc.rows import MAX_PROBLEMS, Columns, cell

_MISSING = object()


def lookup(value: Any, path: str) -> Any:
    """The value at a dotted ``path`` (list indices as numbers); a sentinel when absent."""
    if path == "":
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


@dataclass(frozen=True)
class ThreadRows:
    """The typed columns of one thread, how many rows it had and which were skipped."""

    columns: Columns
    rows: int
    skipped: int


@dataclass(frozen=True)
class _Column:
    """A column mapping ready for typing: its spec built once, bounds as exact numbers."""

    name: str
    path: str
    spec: ColumnSpec
    low: Decimal | None
    high: Decimal | None
    categories: dict[str, int]


def _prepared(mapping: InputMapping) -> list[_Column]:
    columns = []
    for column in mapping.columns:
        spec = column.spec()
        columns.append(
            _Column(
                name=column.name,
                path=column.field_path,
                spec=spec,
                # The bounds exactly as cell() compares them.
                low=None if spec.min is None else Decimal(str(spec.min)),
                high=None if spec.max is None else Decimal(str(spec.max)),
                categories={c: i for i, c in enumerate(spec.categories or [])},
            )
        )
    return columns


def records(mapping: InputMapping, data: Any) -> tuple[list[Any], list[Problem]]:
    """The records of a thread's data: the list at ``mapping.records`` (one object = one row)."""
    found = lookup(data, mapping.records)
    where = f"data.{mapping.records}" if mapping.records else "data"
    if isinstance(found, list):
        return found, []
    if isinstance(found, dict):
        return [found], []
    return [], [Problem(where, "not a list of records")]


def _row_limits(mapping: InputMapping, kept: int, where: str) -> list[Problem]:
    problems = []
    if kept < mapping.min_rows:
        problems.append(Problem(where, f"{kept} usable rows; at least {mapping.min_rows}"))
    if mapping.max_rows is not None and kept > mapping.max_rows:
        problems.append(Problem(where, f"{kept} rows; at most {mapping.max_rows}"))
    return problems


def typed_rows(mapping: InputMapping, data: Any, where: str) -> tuple[ThreadRows, list[Problem]]:
    """Typed columns of a thread's records and the problems (none are raised here).

    With ``bad_rows = "skip"`` a bad row is left out and is not a problem; the row limits
    are checked on the rows that remain. ``where`` prefixes every problem's location.
    """
    rows, problems = records(mapping, data)
    if not problems:
        columns = _columnar(_prepared(mapping), rows)
        if columns is not None:
            return ThreadRows(columns, len(rows), 0), _row_limits(mapping, len(rows), where)
    return typed_rows_by_row(mapping, data, where)


def _columnar(columns: list[_Column], rows: list[Any]) -> Columns | None:
    """Every column of ``rows`` when every cell is good as it is; None when one may not be."""
    if not set(map(type, rows)) <= {dict}:
        return None
    typed: Columns = {}
    for column in columns:
        values = _extract(column.path, rows)
        found = None if values is None else _checked(column, values)
        if found is None:
            return None
        typed[column.name] = found
    return typed


def _extract(path: str, rows: list[dict[str, Any]]) -> list[Any] | None:
    """The value at ``path`` of every record; None when one is absent."""
    if "." not in path:
        try:
            return [row[path] for row in rows]
        except KeyError:
            return None
    values = [lookup(row, path) for row in rows]
    return None if any(value is _MISSING for value in values) else values


def _checked(column: _Column, values: list[Any]) -> list[Any] | None:
    """The typed column when all ``values`` are plainly good (the common case), else None.

    Integer: every value an ``int`` (not a bool, float or string) within the bounds, which
    :func:`cell` would return unchanged. Categorical: every value exactly a category, as its
    index. Fixed: every value an ``int`` or a finite ``float`` with at most ``scale``
    decimals, as :func:`cell`'s ``Decimal``. Anything else goes row by row.
    """
    kinds = set(map(type, values))
    if column.spec.type is ColumnType.CATEGORICAL:
        if not kinds <= {str}:
            return None
        try:
            return [column.categories[value] for value in values]
        except KeyError:
            return None
    numbers: list[Any]
    if column.spec.type is ColumnType.INTEGER:
        if not kinds <= {int}:
            return None
        numbers = values
    else:
        if not kinds <= {int, float}:
            return None
        numbers = [Decimal(repr(v)) if type(v) is float else Decimal(v) for v in values]
        if kinds != {int}:
            smallest = -(column.spec.scale or 0)
            for number in numbers:
                if not number.is_finite() or number.as_tuple().exponent < smallest:
                    return None
    if numbers and column.low is not None and min(numbers) < column.low:
        return None
    if numbers and column.high is not None and max(numbers) > column.high:
        return None
    return numbers


def typed_rows_by_row(
    mapping: InputMapping, data: Any, where: str
) -> tuple[ThreadRows, list[Problem]]:
    """:func:`typed_rows` one row and cell at a time, naming every problem (at most
    :data:`~ptx_chain_node.mpc.rows.MAX_PROBLEMS`)."""
    rows, problems = records(mapping, data)
    problems = [Problem(f"{where}.{p.field}", p.problem) for p in problems]
    prepared = _prepared(mapping)
    columns: Columns = {c.name: [] for c in prepared}
    kept = skipped = 0
    for index, record in enumerate(rows):
        row_problems: list[Problem] = []
        values: dict[str, Any] = {}
        if not isinstance(record, dict):
            row_problems.append(Problem(f"{where}[{index}]", "not a JSON object"))
        else:
            for column in prepared:
                raw = lookup(record, column.path)
                if raw is _MISSING or raw is None:
                    row_problems.append(Problem(f"{where}[{index}].{column.path}", "missing value"))
                    continue
                try:
                    values[column.name] = cell(column.spec, raw)
                except ValueError as exc:
                    row_problems.append(Problem(f"{where}[{index}].{column.path}", str(exc)))
        if row_problems:
            if mapping.bad_rows == "skip":
                skipped += 1
                continue
            problems += row_problems
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        kept += 1
        for name, value in values.items():
            columns[name].append(value)
    if mapping.bad_rows == "skip" or not problems:
        problems += _row_limits(mapping, kept, where)
    return ThreadRows(columns, kept, skipped), problems[:MAX_PROBLEMS]
