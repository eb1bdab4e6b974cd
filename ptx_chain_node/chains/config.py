"""Chain configuration: what the MPC processor computes for a service chain or an offering.

A chain configuration file (TOML or JSON) holds one ``[[chains]]`` table per service chain
(its ``catalog_ids``) and/or offering (its ``target_ids``, the ``x-ptx-target-id``):

- the ``computations`` (catalogue program, version, parameters), each one collaboration;
- the ``input`` (:mod:`ptx_chain_node.chains.input_mapping`): how JSON records map to typed
  columns (``path`` into a record, type, bounds) and what to do with a bad row (``refuse``
  before the ACK, or ``skip``);
- the ``parties``: which thread is which input party (``origin`` -> the provider, each
  ``additionalData`` entry -> its participant by id or name), the ``external_parties`` that
  upload with their own client, ``min_parties`` and the ``deadline``;
- the ``engine``: ``mpyc`` (its nodes are the gateway's ``[mpyc]`` settings) or
  ``carbynestack`` (its VCPs are the chain's ``compute_config``);
- the ``output_parties`` that receive every result besides the chain (each with its
  notification endpoint and secret, and the sha256 of the bearer token its operator was
  issued), the ``result`` shape of the resume ``data`` and ``params``, and the
  ``on_failure`` policy.

:func:`load_chain_file` reads and validates a file; :func:`check_chain_file` lists every
problem with its location (``chains[0].input.columns[1].type``), including programs that do
not fit the input specification or the engine; :func:`engine_problems` names the chains
whose engine the gateway does not run.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ptx_chain_node.chains.input_mapping import ColumnMapping, InputMapping
from ptx_chain_node.coordination.collaboration import (
    NAME_PATTERN,
    ExpectedParty,
    ProgramRef,
    check_endpoint,
)
from ptx_chain_node.errors import Problem, PtxError

__all__ = [
    "CHAIN_OUTPUT_PARTY",
    "ChainConfig",
    "ChainEngine",
    "ChainFile",
    "ChainOutputParty",
    "ColumnMapping",
    "Computation",
    "InputMapping",
    "ResultShape",
    "ThreadParty",
    "check_chain_file",
    "engine_problems",
    "load_chain_file",
    "parse_chain_file",
    "read_document",
]

#: The id of the gateway's own (in-process) output party in every chain collaboration.
CHAIN_OUTPUT_PARTY = "chain"
#: The engines a chain step can run on.
ChainEngine = Literal["mpyc", "carbynestack"]


class ThreadParty(BaseModel):
    """A data thread of the chain step as an input party.

    ``thread = "origin"``: the main thread (also bare or wrapped ``data`` without a
    pre-chain), i.e. the provider. ``thread = "additional"``: the ``additionalData`` entry
    whose participant has ``participant_id`` (or, failing that, ``participant_name``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NAME_PATTERN, description="the input party id")
    thread: Literal["origin", "additional"] = "additional"
    participant_id: str | None = None
    participant_name: str | None = None
    identity: str | None = Field(
        None, max_length=500, description="PTX participant or offering URI (default: the id)"
    )

    @model_validator(mode="after")
    def _selector(self) -> ThreadParty:
        named = self.participant_id is not None or self.participant_name is not None
        if self.thread == "origin" and named:
            raise ValueError("the origin thread is not selected by participant")
        if self.thread == "additional" and not named:
            raise ValueError("an additional thread needs participant_id or participant_name")
        return self


class ChainOutputParty(BaseModel):
    """An output party of every collaboration of the chain step, besides the chain itself.

    When a run ends it gets the signed notification ``PUT {endpoint}/notify`` (HMAC with
    ``notify_secret``) naming the collaboration and result ids, and fetches its own result
    shares with the bearer token whose sha256 is ``token_sha256`` (issued by the operator,
    e.g. ``ptx-chain-node config party-token``; the token itself is never configured here).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NAME_PATTERN)
    endpoint: str = Field(max_length=2000, description="its client service (gets /notify)")
    notify_secret: str = Field(
        min_length=16, max_length=200, description="HMAC key of its notifications"
    )
    token_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="sha256 (hex) of the party's bearer token"
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint(value)


class Computation(BaseModel):
    """One catalogue program run on the inputs (one collaboration per chain step)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="key of its result in the resume data")
    program: str = Field(pattern=NAME_PATTERN)
    version: str = Field("1.0.0", pattern=NAME_PATTERN)
    parameters: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(
        default_factory=list, description="names for the outputs (e.g. histogram categories)"
    )

    def ref(self) -> ProgramRef:
        return ProgramRef(name=self.program, version=self.version, parameters=self.parameters)


class ResultShape(BaseModel):
    """How the results become the resume ``data`` and ``params``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = Field(
        None, min_length=1, description="data = {key: results}; unset: the results themselves"
    )
    include_parties: bool = Field(
        True, description="add 'parties' (id -> rows) and 'computed_by' to the data"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="resume params (merged over {'processor': 'mpc'})"
    )


class ChainConfig(BaseModel):
    """The MPC step of one service chain (``catalog_ids``) or offering (``target_ids``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    catalog_ids: list[str] = Field(default_factory=list, description="serviceChains[].catalogId")
    target_ids: list[str] = Field(default_factory=list, description="x-ptx-target-id values")
    engine: ChainEngine = Field(
        "mpyc", description="mpyc: the gateway's [mpyc] nodes; carbynestack: compute_config"
    )
    compute_config: dict[str, Any] = Field(
        default_factory=dict, description="carbynestack: {prime, r, rinv, providers, ...}"
    )
    input: InputMapping
    parties: list[ThreadParty] = Field(default_factory=list)
    accept_unlisted: bool = Field(
        False, description="an additional thread of an unlisted participant is a party too"
    )
    external_parties: list[ExpectedParty] = Field(
        default_factory=list, description="input parties uploading with their own client"
    )
    min_parties: int | None = Field(None, ge=1, description="default: every expected party")
    deadline: float = Field(600.0, gt=0, description="seconds from the first delivery")
    computations: list[Computation] = Field(min_length=1, max_length=50)
    output_parties: list[ChainOutputParty] = Field(
        default_factory=list, description="receive the results besides the chain"
    )
    result: ResultShape = Field(default_factory=ResultShape)
    on_failure: Literal["fail", "resume_error", "hold"] = Field(
        "fail",
        description="after the ACK: fail the job, resume with an error object, or hold it",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ChainConfig:
        if not self.catalog_ids and not self.target_ids:
            raise ValueError("give catalog_ids or target_ids (what this configuration serves)")
        ids = [p.id for p in self.parties] + [p.id for p in self.external_parties]
        if len(set(ids)) != len(ids):
            raise ValueError("party ids must be unique (parties and external_parties)")
        outputs = [p.id for p in self.output_parties]
        if CHAIN_OUTPUT_PARTY in outputs:
            raise ValueError(f"output party id '{CHAIN_OUTPUT_PARTY}' is the chain's own")
        if len(set(outputs)) != len(outputs):
            raise ValueError("output party ids must be unique")
        if sum(p.thread == "origin" for p in self.parties) > 1:
            raise ValueError("at most one party is the origin thread")
        names = [c.name for c in self.computations]
        if len(set(names)) != len(names):
            raise ValueError("computation names must be unique")
        return self

    def origin_party(self) -> ThreadParty:
        """The party of the origin (main) thread; ``origin`` unless configured."""
        for party in self.parties:
            if party.thread == "origin":
                return party
        return ThreadParty(id="origin", thread="origin")


class ChainFile(BaseModel):
    """A chain configuration file: the chains and where contracts may be fetched from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_services: list[str] = Field(
        default_factory=list,
        description="base URLs of contract services (the only place contracts are fetched)",
    )
    contract_cache_seconds: float = Field(300.0, ge=0)
    contract_timeout: float = Field(10.0, gt=0)
    chains: list[ChainConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ChainFile:
        names = [c.name for c in self.chains]
        if len(set(names)) != len(names):
            raise ValueError("chain names must be unique")
        for attr in ("target_ids", "catalog_ids"):
            seen: dict[str, str] = {}
            for chain in self.chains:
                for key in getattr(chain, attr):
                    if key in seen:
                        raise ValueError(f"{attr}: {key!r} is in {seen[key]!r} and {chain.name!r}")
                    seen[key] = chain.name
        for url in self.contract_services:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"contract_services: {url!r} is not an http(s) URL")
        return self


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "(top level)"


def _program_problems(index: int, chain: ChainConfig) -> list[Problem]:
    if chain.engine == "carbynestack":
        from ptx_chain_node.chains.carbynestack import carbynestack_problems

        return carbynestack_problems(index, chain)
    from ptx_chain_node.mpc import catalogue
    from ptx_chain_node.mpc.registry import CatalogueRegistry

    registry = CatalogueRegistry()
    problems: list[Problem] = []
    spec = chain.input.spec()
    for j, computation in enumerate(chain.computations):
        where = f"chains[{index}].computations[{j}]"
        try:
            catalogue.get(computation.program, computation.version)  # the MPC catalogue only
            registry.resolve(computation.ref(), spec)
        except PtxError as exc:
            details = exc.problems or [Problem("program", exc.message)]
            problems += [
                Problem(f"{where}.{p.field.removeprefix('program.')}", p.problem) for p in details
            ]
    return problems


def engine_problems(chains: ChainFile, available: Collection[str]) -> list[Problem]:
    """A problem for each chain whose engine is not among the gateway's ``available`` ones."""
    known = ", ".join(sorted(available)) or "none"
    return [
        Problem(
            f"chains[{i}].engine",
            f"engine '{chain.engine}' is not configured in the gateway (configured: {known})",
        )
        for i, chain in enumerate(chains.chains)
        if chain.engine not in available
    ]


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def parse_chain_file(document: Any) -> tuple[ChainFile | None, list[Problem]]:
    """Validate a decoded chain file; the model (when valid) and every problem found.

    Programs are checked against the input specification of every chain that is itself
    valid, so one run reports the problems of all chains.
    """
    try:
        chains = ChainFile.model_validate(document)
    except ValidationError as exc:
        problems = [Problem(_location(tuple(e["loc"])), _message(e)) for e in exc.errors()]
        raw = document.get("chains") if isinstance(document, dict) else None
        for index, item in enumerate(raw if isinstance(raw, list) else []):
            try:
                problems += _program_problems(index, ChainConfig.model_validate(item))
            except ValidationError:
                continue
        return None, problems
    problems = [p for i, c in enumerate(chains.chains) for p in _program_problems(i, c)]
    return (None if problems else chains), problems


def read_document(path: Path) -> Any:
    """A TOML (``.toml``) or JSON file, decoded (PtxError naming the file when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PtxError(f"{path}: {exc}", 400, [Problem(str(path), str(exc))]) from None


def check_chain_file(path: Path) -> list[Problem]:
    """Every problem of the chain file at ``path`` (empty when it is valid)."""
    try:
        document = read_document(path)
    except PtxError as exc:
        return exc.problems
    return parse_chain_file(document)[1]


def load_chain_file(path: Path) -> ChainFile:
    """The chain file at ``path``; PtxError listing every problem when it is not valid."""
    chains, problems = parse_chain_file(read_document(path))
    if chains is None:
        raise PtxError(f"{path}: invalid chain configuration", 400, problems)
    return chains
