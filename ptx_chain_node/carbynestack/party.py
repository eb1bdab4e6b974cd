"""A Carbyne Stack input or output party of a collaboration: columns in, result values out.

The ``carbynestack`` coordination engine expects from each input party **one Amphora secret
per input column**, in the order of the input specification, each holding the party's rows
as the column's encoded integers (an ``integer`` as is, a ``fixed`` column as
``value * 10**scale``, a ``categorical`` one as the category index):

- :func:`encoded_column` (pure) turns a typed column (:func:`ptx_chain_node.mpc.rows.cell`
  values) into those integers, refusing a value with more decimals than the scale;
- :func:`upload_columns` uploads them with :class:`~.client.CarbyneStackClient` (input
  masks from every VCP, the ``w = s·r`` / ``u = v·r`` check, masked inputs to every VCP) and
  returns the secret ids to confirm with the coordinator. If one column fails, the columns
  already uploaded are deleted again;
- :func:`result_of` reads the result secrets of a run (one per selected column, checked the
  same way) and decodes them back into column units: a ``sum`` as an exact
  :class:`~decimal.Decimal`, a ``mean`` as an exact :class:`~fractions.Fraction` (16
  fractional bits of fixed point), a ``histogram`` as its bin counts.

Values never reach logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any

from ptx_chain_node.carbynestack.client import CarbyneStackClient, Tag
from ptx_chain_node.carbynestack.coordination_programs import result_values, steps
from ptx_chain_node.coordination.collaboration import Collaboration, ColumnSpec, ColumnType
from ptx_chain_node.errors import Problem, PtxError

#: Tag naming the input column a secret holds (public, like the column names themselves).
COLUMN_TAG = "ptx-column"


def encoded_column(column: ColumnSpec, values: Sequence[Any]) -> list[int]:
    """The encoded integers of a typed column (``ValueError`` naming the column on a misfit)."""
    if column.type is not ColumnType.FIXED:
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise ValueError(f"column {column.name}: not integers")
        return [int(v) for v in values]
    factor = Decimal(10) ** (column.scale or 0)
    encoded = []
    for value in values:
        scaled = Decimal(value) * factor
        if scaled != scaled.to_integral_value():
            raise ValueError(f"column {column.name}: more than {column.scale} decimal places")
        encoded.append(int(scaled))
    return encoded


async def upload_columns(
    client: CarbyneStackClient, collaboration: Collaboration, columns: dict[str, list[Any]]
) -> tuple[list[str], int]:
    """Upload one secret per input column (specification order); the ids and the row count."""
    spec = collaboration.input_specification.columns
    lengths = {len(columns.get(c.name, [])) for c in spec}
    if len(lengths) != 1 or 0 in lengths:
        message = "every input column needs the same, non-zero number of rows"
        raise PtxError(message, 422, [Problem("rows", message)])
    (rows,) = lengths
    encoded = []
    for column in spec:
        try:
            encoded.append(encoded_column(column, columns[column.name]))
        except ValueError as exc:
            raise PtxError(str(exc), 422, [Problem(f"columns.{column.name}", str(exc))]) from None
    secret_ids: list[str] = []
    try:
        for column, values in zip(spec, encoded, strict=True):
            secret_ids.append(await client.upload(values, [Tag(COLUMN_TAG, column.name)]))
    except BaseException:
        for secret_id in secret_ids:
            try:
                await client.delete(secret_id)
            except PtxError:
                continue  # the VCP is failing: nothing more to do here
        raise
    return secret_ids, rows


def _in_units(column: ColumnSpec, value: int | Fraction) -> Decimal | Fraction:
    scale = (column.scale or 0) if column.type is ColumnType.FIXED else 0
    if isinstance(value, Fraction):
        factor: int = 10**scale
        return value / factor
    return Decimal(value).scaleb(-scale)


async def result_of(
    client: CarbyneStackClient, collaboration: Collaboration, result_ids: Sequence[str]
) -> dict[str, Any]:
    """The decoded result of a run: ``{column: value}`` (``{column: [counts]}`` for a
    histogram), read from the result secrets in the order of the selected columns."""
    activations = steps(collaboration)
    if len(result_ids) != len(activations):
        message = f"{len(result_ids)} result secrets for {len(activations)} columns"
        raise PtxError(message, 502, [Problem("result_ids", message)])
    program = collaboration.program.name
    columns = collaboration.input_specification.columns
    result: dict[str, Any] = {}
    for step, secret_id in zip(activations, result_ids, strict=True):
        values = result_values(program, await client.read(secret_id))
        if program == "histogram":
            result[step.name] = [int(v) for v in values]
        else:
            (value,) = values
            result[step.name] = _in_units(columns[step.column], value)
    return result
