"""A thread's JSON records as typed columns, by the chain configuration's input mapping.

Pure functions. Each column's value is read at its dotted field path (``a.b.0.c``) in a
record and typed by :func:`ptx_chain_node.mpc.rows.cell` (integer, fixed, categorical,
bounds). A bad row is refused (every problem named by thread, row and field, values never
shown) or skipped, as configured; the row limits apply to what remains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptx_chain_node.chains.config import InputMapping
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


def records(mapping: InputMapping, data: Any) -> tuple[list[Any], list[Problem]]:
    """The records of a thread's data: the list at ``mapping.records`` (one object = one row)."""
    found = lookup(data, mapping.records)
    where = f"data.{mapping.records}" if mapping.records else "data"
    if isinstance(found, list):
        return found, []
    if isinstance(found, dict):
        return [found], []
    return [], [Problem(where, "not a list of records")]


def typed_rows(mapping: InputMapping, data: Any, where: str) -> tuple[ThreadRows, list[Problem]]:
    """Typed columns of a thread's records and the problems (none are raised here).

    With ``bad_rows = "skip"`` a bad row is left out and is not a problem; the row limits
    are checked on the rows that remain. ``where`` prefixes every problem's location.
    """
    rows, problems = records(mapping, data)
    problems = [Problem(f"{where}.{p.field}", p.problem) for p in problems]
    columns: Columns = {c.name: [] for c in mapping.columns}
    kept = skipped = 0
    for index, record in enumerate(rows):
        row_problems: list[Problem] = []
        values: dict[str, Any] = {}
        for column in mapping.columns:
            raw = lookup(record, column.field_path) if isinstance(record, dict) else _MISSING
            location = f"{where}[{index}].{column.field_path}"
            if not isinstance(record, dict):
                row_problems.append(Problem(f"{where}[{index}]", "not a JSON object"))
                break
            if raw is _MISSING or raw is None:
                row_problems.append(Problem(location, "missing value"))
                continue
            try:
                values[column.name] = cell(column.spec(), raw)
            except ValueError as exc:
                row_problems.append(Problem(location, str(exc)))
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
        if kept < mapping.min_rows:
            problems.append(Problem(where, f"{kept} usable rows; at least {mapping.min_rows}"))
        if mapping.max_rows is not None and kept > mapping.max_rows:
            problems.append(Problem(where, f"{kept} rows; at most {mapping.max_rows}"))
    return ThreadRows(columns, kept, skipped), problems[:MAX_PROBLEMS]
