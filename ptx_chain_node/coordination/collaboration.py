"""A collaboration as its creator defines it: program, input specification, parties, time.

These are the pydantic models of the native API and of the stored definition. The mutable
part of a collaboration (state, run, results) lives beside it in the store
(:class:`~ptx_chain_node.coordination.records.CollaborationRecord`).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from httpx import URL, InvalidURL
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ptx_chain_node.errors import Problem, PtxError

#: Party ids and column names: short, printable, safe in a URL path segment.
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"
#: Secret ids as the compute side issues them (UUIDs, Amphora ids, MPyC handles).
SECRET_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,200}$"  # noqa: S105 - a pattern, not a secret
MAX_SECRET_IDS = 10_000

_SECRET_ID = re.compile(SECRET_ID_PATTERN)
_Model = TypeVar("_Model", bound=BaseModel)


def parse_model(model: type[_Model], data: Any, *, prefix: str = "body") -> _Model:
    """Validate ``data`` as ``model``; on failure a 422 naming every field at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(".".join([prefix, *(str(p) for p in err["loc"])]), err["msg"])
            for err in exc.errors()
        ]
        raise PtxError(f"invalid {model.__name__}", 422, problems) from None


class ColumnType(StrEnum):
    """How the values of one input column are encoded for the computation."""

    INTEGER = "integer"
    FIXED = "fixed"  # fixed point: value * 10**scale as an integer
    CATEGORICAL = "categorical"  # index into ``categories``


class ColumnSpec(BaseModel):
    """One typed column of the input: its type, bounds and (categorical) categories."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    type: ColumnType = ColumnType.INTEGER
    scale: int | None = Field(None, ge=0, le=18, description="decimal digits of a fixed column")
    categories: list[str] | None = Field(None, description="the values of a categorical column")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.type is ColumnType.FIXED and self.scale is None:
            raise ValueError("a fixed column needs a scale")
        if self.type is not ColumnType.FIXED and self.scale is not None:
            raise ValueError("only a fixed column has a scale")
        if self.type is ColumnType.CATEGORICAL:
            cats = self.categories or []
            if len(cats) < 2 or len(set(cats)) != len(cats):
                raise ValueError("a categorical column needs at least two distinct categories")
            if self.min is not None or self.max is not None:
                raise ValueError("a categorical column has no bounds")
        elif self.categories is not None:
            raise ValueError("only a categorical column has categories")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class InputSpec(BaseModel):
    """What each input party uploads: typed columns and how many rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: list[ColumnSpec] = Field(min_length=1, max_length=1000)
    min_rows: int = Field(1, ge=0)
    max_rows: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> InputSpec:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        if self.max_rows is not None and self.min_rows > self.max_rows:
            raise ValueError("min_rows is greater than max_rows")
        return self

    def csv_header(self) -> str:
        """The CSV header line of the input (upstream's ``csv_specification``)."""
        return ",".join(c.name for c in self.columns)

    def check_upload(self, secret_ids: list[str], rows: int | None) -> list[Problem]:
        """What is wrong with a confirmed upload of ``rows`` rows as ``secret_ids`` (pure)."""
        problems: list[Problem] = []
        if not secret_ids:
            problems.append(Problem("secret_ids", "at least one secret id is required"))
        if len(secret_ids) > MAX_SECRET_IDS:
            problems.append(Problem("secret_ids", f"at most {MAX_SECRET_IDS} secret ids"))
        if len(set(secret_ids)) != len(secret_ids):
            problems.append(Problem("secret_ids", "secret ids must be distinct"))
        problems += [
            Problem(f"secret_ids.{i}", "not a secret id (1-200 of A-Z a-z 0-9 _ . : -)")
            for i, secret_id in enumerate(secret_ids)
            if not isinstance(secret_id, str) or not _SECRET_ID.match(secret_id)
        ]
        if rows is None:
            if self.min_rows > 1 or self.max_rows is not None:
                problems.append(Problem("rows", "required: the specification bounds the rows"))
        elif rows < self.min_rows:
            problems.append(Problem("rows", f"at least {self.min_rows} rows are required"))
        elif self.max_rows is not None and rows > self.max_rows:
            problems.append(Problem("rows", f"at most {self.max_rows} rows are allowed"))
        return problems


class ProgramRef(BaseModel):
    """A program of the catalogue: name, version and its parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=NAME_PATTERN)
    parameters: dict[str, Any] = Field(default_factory=dict)


class Program(ProgramRef):
    """A resolved program: the reference plus its canonical description and sha256."""

    description: dict[str, Any]
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ExpectedParty(BaseModel):
    """An input party the collaboration expects, bound to a real dataspace identity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NAME_PATTERN)
    identity: str = Field(
        min_length=1,
        max_length=500,
        description="PTX participant id or service-offering URI of the party",
    )


def check_endpoint(value: str) -> str:
    """An output party's client endpoint: an http(s) URL without credentials or fragment."""
    try:
        url = URL(value)
    except InvalidURL:
        raise ValueError("not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http(s) URL with a host")
    if url.userinfo or url.fragment or url.query:
        raise ValueError("must not carry credentials, a query or a fragment")
    return value.rstrip("/")


class OutputPartySpec(BaseModel):
    """An output party: where its client service is notified, and the signing secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NAME_PATTERN)
    endpoint: str = Field(max_length=2000)
    notify_secret: str | None = Field(
        None, min_length=16, max_length=200, description="HMAC key; generated when absent"
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint(value)


class CollaborationRequest(BaseModel):
    """The body of ``POST /v1/collaborations``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    program: ProgramRef
    input_specification: InputSpec
    input_parties: list[ExpectedParty] = Field(default_factory=list, max_length=1000)
    number_of_parties: int | None = Field(None, ge=1, le=1000)
    min_parties: int | None = Field(None, ge=1)
    allow_partial_run: bool = Field(
        False, description="at the deadline, run with min_parties instead of expiring"
    )
    deadline: datetime | None = Field(None, description="ISO 8601 with a time zone")
    output_parties: list[OutputPartySpec] = Field(default_factory=list, max_length=100)
    engine: str = Field(min_length=1, max_length=50)
    compute_config: dict[str, Any] = Field(default_factory=dict)
    registration: Literal["open", "operator"] = Field(
        "open", description="operator: only the operator token may register input parties"
    )
    approval: Literal["explicit", "on_confirm"] = Field(
        "explicit", description="on_confirm: confirming an upload approves the program hash"
    )

    @model_validator(mode="after")
    def _parties(self) -> CollaborationRequest:
        ids = [p.id for p in self.input_parties]
        if len(set(ids)) != len(ids):
            raise ValueError("input_parties: ids must be unique")
        outputs = [p.id for p in self.output_parties]
        if len(set(outputs)) != len(outputs):
            raise ValueError("output_parties: ids must be unique")
        if not ids and self.number_of_parties is None:
            raise ValueError("give input_parties or number_of_parties")
        if ids and self.number_of_parties not in (None, len(ids)):
            raise ValueError("number_of_parties differs from the number of input_parties")
        if self.min_parties is not None and self.min_parties > self.expected_count:
            raise ValueError("min_parties exceeds the number of parties")
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("deadline needs a time zone")
        return self

    @property
    def expected_count(self) -> int:
        """How many input parties complete the collaboration."""
        return len(self.input_parties) or (self.number_of_parties or 0)


class Collaboration(BaseModel):
    """The immutable definition of a collaboration, as stored (without secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    program: Program
    input_specification: InputSpec
    input_parties: list[ExpectedParty]
    number_of_parties: int
    min_parties: int
    allow_partial_run: bool
    deadline: float | None
    engine: str
    compute_config: dict[str, Any]
    registration: Literal["open", "operator"]
    approval: Literal["explicit", "on_confirm"]
    created_at: float

    def expected_party(self, party_id: str) -> ExpectedParty | None:
        """The expected party ``party_id``; None when the collaboration is open to any id."""
        for party in self.input_parties:
            if party.id == party_id:
                return party
        return None
