"""Coordination table rows to records and back.

The tables name their columns after the records' fields, so a row maps to a record by
name; only the columns stored in another form (enums, JSON, definitions) are converted.
"""

from __future__ import annotations

import functools
import json
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.engine import RowMapping

from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.states import CollabState

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

R = TypeVar("R", bound="DataclassInstance")


@functools.cache
def _field_names(cls: type[DataclassInstance]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def from_row(cls: type[R], row: RowMapping, **converted: Any) -> R:
    """The record ``cls`` from the row's columns of its field names (``converted`` wins)."""
    values = {name: row[name] for name in _field_names(cls) if name not in converted}
    return cls(**values, **converted)


def loads(value: str | None) -> Any:
    """A JSON column's value (None stays None)."""
    return json.loads(value) if value is not None else None


def collaboration_record(row: RowMapping) -> CollaborationRecord:
    """A collaboration row as its record."""
    return from_row(
        CollaborationRecord,
        row,
        definition=Collaboration.model_validate_json(row["definition"]),
        state=CollabState(row["state"]),
        result_ids=loads(row["result_ids"]),
    )


def party_record(row: RowMapping) -> PartyRecord:
    """A party row as its record."""
    return from_row(PartyRecord, row, role=Role(row["role"]), secret_ids=loads(row["secret_ids"]))


def party_values(record: PartyRecord) -> dict[str, Any]:
    """A party record as the values of its row."""
    values = {name: getattr(record, name) for name in _field_names(PartyRecord)}
    values["role"] = record.role.value
    if record.secret_ids is not None:
        values["secret_ids"] = json.dumps(record.secret_ids)
    return values
