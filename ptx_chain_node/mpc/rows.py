"""An input party's rows from CSV or JSON, checked against the collaboration's input spec.

Pure functions, no I/O beyond reading the file given. Every cell is typed by its column:

- ``integer``: a whole number (``"42"``, ``-7``; not ``4.2``, not ``true``);
- ``fixed``: a decimal with at most ``scale`` decimal places, kept exact as ``Decimal``;
- ``categorical``: one of ``categories``, kept as its index.

Bounds (``min``/``max``) and row limits (``min_rows``/``max_rows``) are checked. Errors are
one :class:`PtxError` (422) whose problems name the row (1-based data row; for CSV also the
file line) and the column, at most :data:`MAX_PROBLEMS` of them. Values never appear in an
error message.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ptx_chain_node.coordination.collaboration import ColumnSpec, ColumnType, InputSpec
from ptx_chain_node.errors import Problem, PtxError

MAX_PROBLEMS = 20
Columns = dict[str, list[Any]]


def _number(value: object) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError("not a number")
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, int | str | Decimal):
        text = str(value).strip()
    else:
        raise ValueError("not a number")
    if not text:
        raise ValueError("missing value")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not number.is_finite():
        raise ValueError("not a finite number")
    return number


def cell(column: ColumnSpec, value: object) -> int | Decimal:
    """One cell as its typed value (``ValueError`` saying what is wrong, without the value)."""
    if column.type is ColumnType.CATEGORICAL:
        categories = column.categories or []
        text = value.strip() if isinstance(value, str) else value
        if text not in categories:
            raise ValueError(f"not one of the {len(categories)} categories")
        return categories.index(str(text))
    number = _number(value)
    typed: int | Decimal
    if column.type is ColumnType.INTEGER:
        if isinstance(value, float) or number != number.to_integral_value():
            raise ValueError("not a whole number")
        typed = int(number)
    else:
        scale = column.scale or 0
        if number.as_tuple().exponent < -scale:  # type: ignore[operator]
            raise ValueError(f"more than {scale} decimal places")
        typed = number
    if column.min is not None and number < Decimal(str(column.min)):
        raise ValueError(f"below the minimum {column.min:g}")
    if column.max is not None and number > Decimal(str(column.max)):
        raise ValueError(f"above the maximum {column.max:g}")
    return typed


def validate_rows(
    spec: InputSpec, rows: Sequence[Mapping[str, object]], *, first_line: int | None = None
) -> Columns:
    """Typed columns of ``rows`` (``first_line``: the file line of row 1, for CSV)."""
    problems: list[Problem] = []
    count = len(rows)
    if count < spec.min_rows:
        problems.append(Problem("rows", f"{count} rows; at least {spec.min_rows} are required"))
    if spec.max_rows is not None and count > spec.max_rows:
        problems.append(Problem("rows", f"{count} rows; at most {spec.max_rows} are allowed"))
    columns: Columns = {c.name: [] for c in spec.columns}
    for r, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            problems.append(Problem(f"rows[{r}]", "not an object of column values"))
            continue
        for column in spec.columns:
            try:
                columns[column.name].append(cell(column, row.get(column.name)))
            except ValueError as exc:
                where = f" (line {first_line + r - 1})" if first_line is not None else ""
                problems.append(Problem(f"rows[{r}].{column.name}", f"{exc}{where}"))
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise PtxError(
            f"the input does not match the input specification ({len(problems)} problems"
            f"{' or more' if len(problems) >= MAX_PROBLEMS else ''})",
            422,
            problems[:MAX_PROBLEMS],
        )
    return columns


def parse_csv(spec: InputSpec, text: str) -> Columns:
    """Rows of a CSV text with a header line naming (at least) the spec's columns."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c.name for c in spec.columns if c.name not in header]
    if missing:
        raise PtxError(
            "the CSV header lacks columns of the input specification",
            422,
            [Problem(f"header.{name}", "missing column") for name in missing],
        )
    return validate_rows(spec, list(reader), first_line=2)


def parse_json(spec: InputSpec, text: str) -> Columns:
    """Rows of a JSON list of objects, or of ``{"rows": [...]}``."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise PtxError("the file is not JSON", 400, [Problem("file", "not valid JSON")]) from None
    rows = doc.get("rows") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise PtxError(
            "JSON input must be a list of rows", 422, [Problem("rows", "a list of objects")]
        )
    return validate_rows(spec, rows)


def read_file(spec: InputSpec, path: Path) -> Columns:
    """Typed columns of a ``.csv`` or ``.json`` file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PtxError(
            f"cannot read {path.name}", 400, [Problem("file", type(exc).__name__)]
        ) from None
    if path.suffix.lower() == ".json":
        return parse_json(spec, text)
    if path.suffix.lower() == ".csv":
        return parse_csv(spec, text)
    raise PtxError("unknown file type", 400, [Problem("file", "must end in .csv or .json")])
