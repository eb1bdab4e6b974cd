"""How a chain step's JSON records become an input party's typed rows (the ``input`` table).

A column names where its value sits in a record (``path``), its type and bounds; the
mapping says where the records are and what to do with a bad row. Both obey the same rules
as the collaboration's input specification they turn into (:meth:`InputMapping.spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ptx_chain_node.coordination.collaboration import (
    NAME_PATTERN,
    ColumnSpec,
    ColumnType,
    InputSpec,
)


def _same_rules(build: Callable[[], object]) -> None:
    """Build a coordination model; its validation error becomes a plain ValueError."""
    try:
        build()
    except ValidationError as exc:
        raise ValueError(
            "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        ) from None


class ColumnMapping(BaseModel):
    """One typed input column and where its value sits in a JSON record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="column name (programs refer to it)")
    path: str | None = Field(
        None,
        min_length=1,
        description="dotted field path into a record (a.b.0.c); default: the column name",
    )
    type: ColumnType = ColumnType.INTEGER
    scale: int | None = Field(None, ge=0, le=18)
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None

    @property
    def field_path(self) -> str:
        return self.path or self.name

    def spec(self) -> ColumnSpec:
        """The column as the collaboration's input specification names it."""
        return ColumnSpec(
            name=self.name,
            type=self.type,
            scale=self.scale,
            categories=self.categories,
            min=self.min,
            max=self.max,
        )

    @model_validator(mode="after")
    def _consistent(self) -> ColumnMapping:
        _same_rules(self.spec)  # the same rules as a collaboration's column
        return self


class InputMapping(BaseModel):
    """How a thread's JSON records become the rows of an input party."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    records: str = Field(
        "", description="dotted path to the list of records in a thread's data; '' = the data"
    )
    columns: list[ColumnMapping] = Field(min_length=1, max_length=1000)
    min_rows: int = Field(1, ge=0, description="rows each party must have (after skipping)")
    max_rows: int | None = Field(None, ge=1)
    bad_rows: Literal["refuse", "skip"] = Field(
        "refuse", description="refuse: 422 before the ACK; skip: leave the row out"
    )

    def spec(self) -> InputSpec:
        """The collaboration's input specification."""
        return InputSpec(
            columns=[c.spec() for c in self.columns],
            min_rows=self.min_rows,
            max_rows=self.max_rows,
        )

    @model_validator(mode="after")
    def _consistent(self) -> InputMapping:
        _same_rules(self.spec)
        return self
