"""The body a PDC posts to a chain resource, in every variant the real PDC sends.

Variants (see ``shared/reference/service-chain-protocol.md``):

- the wrapper ``{"data", "contract", "params"}``, with ``previousNodeParams`` after a
  resumed node;
- ``data`` as ``{"origin", "additionalData": [{"participant", "data"}]}`` when the node
  has a pre-chain (additional data sources);
- bare data, with no wrapper, when the PDC uses ``skipBodyProcessing``;
- ``params`` as an object, a string (``Object.values(p).join('')``) or ``""``;
- ``username``/``password`` at the top level for ``basic`` credentials: read for
  authentication, then stripped so they are never stored or forwarded;
- JSON under a ``text/plain`` content type.

Bodies are decoded, and payloads stored and loaded (:func:`dump_payload`,
:func:`load_payload`), with orjson: at a million rows the standard library and pydantic's
JSON round trip cost seconds. orjson is strict RFC 8259 JSON in UTF-8 (no ``NaN``, no lone
surrogates, which the PDC's ``JSON.stringify`` never sends either).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_core import to_jsonable_python

from ptx_chain_node.errors import Problem, ProtocolError

JsonValue = Any
WRAPPER_KEYS = frozenset({"data", "contract", "params", "previousNodeParams"})
CREDENTIAL_KEYS = ("username", "password")


class Participant(BaseModel):
    """Who provided an additional-data thread, as the PDC describes it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str | None = None
    name: str | None = None
    connector_url: str | None = Field(default=None, alias="connectorUrl")


class AdditionalData(BaseModel):
    """One additional-data thread of a pre-chain merge."""

    model_config = ConfigDict(extra="allow")

    participant: Participant | None = None
    data: JsonValue = None
    params: JsonValue = None


class MergedData(BaseModel):
    """``data`` of a node with a pre-chain: the main thread and the additional threads."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    origin: JsonValue = None
    additional_data: list[AdditionalData] = Field(default_factory=list, alias="additionalData")


class ChainPayload(BaseModel):
    """A parsed body. ``wrapped`` is False for a bare (skipBodyProcessing) body."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    data: JsonValue = None
    contract: str | None = None
    params: dict[str, JsonValue] | str | None = None
    previous_node_params: JsonValue = Field(default=None, alias="previousNodeParams")
    wrapped: bool = True

    @property
    def params_object(self) -> dict[str, JsonValue]:
        """``params`` as an object: ``""`` and absent become ``{}``, a string ``{"value": s}``."""
        if isinstance(self.params, dict):
            return self.params
        if self.params:
            return {"value": self.params}
        return {}


class Credentials(BaseModel):
    """Basic credentials found in the body (never stored, never logged)."""

    username: str
    password: SecretStr


class DataThread(BaseModel):
    """One input thread of a chain step: the main data, the origin or an additional source."""

    role: Literal["data", "origin", "additional"]
    index: int = 0
    participant: Participant | None = None
    data: JsonValue = None


def _problems(error: ValidationError, prefix: str) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        problems.append(Problem(loc, item["msg"]))
    return problems


def decode_json(raw: bytes) -> JsonValue:
    """Decode a body as JSON whatever its content type; raise a 400 naming ``body``."""
    if not raw.strip():
        raise ProtocolError.single("body", "empty; expected JSON")
    try:
        with _collector_paused():
            return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError.single("body", f"not valid JSON ({exc})") from None


def dump_payload(payload: ChainPayload) -> str:
    """A payload as the JSON text the job store keeps (the fields by their wire names)."""
    document = {
        "data": payload.data,
        "contract": payload.contract,
        "params": payload.params,
        "previousNodeParams": payload.previous_node_params,
        "wrapped": payload.wrapped,
    }
    return orjson.dumps(
        document, default=to_jsonable_python, option=orjson.OPT_NON_STR_KEYS
    ).decode()


def load_payload(text: str | bytes) -> ChainPayload:
    """A payload from its stored JSON text (:func:`dump_payload`, or pydantic's dump)."""
    with _collector_paused():
        document = orjson.loads(text)
    return ChainPayload.model_validate(document)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while one JSON document is built.

    Decoded JSON holds no reference cycles, so a collection could free none of it; but
    every few hundred new containers start one, and the full ones walk the whole heap:
    with a million records, collections took half the decoding time or more. orjson holds
    the GIL throughout, so no other thread runs while the collector is off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def split_credentials(document: JsonValue) -> tuple[JsonValue, Credentials | None]:
    """Strip top-level ``username``/``password`` from a body; return them apart."""
    if not isinstance(document, dict) or not any(k in document for k in CREDENTIAL_KEYS):
        return document, None
    stripped = {k: v for k, v in document.items() if k not in CREDENTIAL_KEYS}
    username, password = document.get("username"), document.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return stripped, None
    return stripped, Credentials(username=username, password=SecretStr(password))


def parse_payload(document: JsonValue, *, skip_body_processing: bool = False) -> ChainPayload:
    """Interpret a decoded (and credential-stripped) body.

    A JSON object holding ``data`` is the PDC's wrapper unless the resource is configured
    for ``skipBodyProcessing``; anything else is bare data.
    """
    if skip_body_processing or not isinstance(document, dict) or "data" not in document:
        return ChainPayload(data=document, wrapped=False)
    if document.get("params") == "":
        document = {**document, "params": None}
    try:
        payload = ChainPayload.model_validate(document)
    except ValidationError as exc:
        raise ProtocolError("invalid body", 422, _problems(exc, "body")) from None
    if is_merged(payload.data):
        try:
            MergedData.model_validate(payload.data)
        except ValidationError as exc:
            raise ProtocolError("invalid body", 422, _problems(exc, "body.data")) from None
    return payload


def is_merged(data: JsonValue) -> bool:
    """True when ``data`` is the ``{origin, additionalData}`` form of a pre-chain merge."""
    return (
        isinstance(data, dict)
        and "additionalData" in data
        and set(data)
        <= {
            "origin",
            "additionalData",
        }
    )


def threads(payload: ChainPayload) -> list[DataThread]:
    """The input threads of a chain step, origin first, then each additional source."""
    if not is_merged(payload.data):
        return [DataThread(role="data", data=payload.data)]
    merged = MergedData.model_validate(payload.data)
    result = [DataThread(role="origin", data=merged.origin)]
    for index, extra in enumerate(merged.additional_data):
        result.append(
            DataThread(
                role="additional", index=index, participant=extra.participant, data=extra.data
            )
        )
    return result
