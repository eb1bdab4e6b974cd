"""The service-chain context a PDC sends in its ``x-ptx-*`` headers.

Header names are matched case-insensitively (the PDC writes mixed case such as
``x-ptx-dataExchangeId``). The chain id is opaque: it is kept byte for byte, never parsed
and never cut, because the resume must echo it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from ptx_chain_node.errors import Problem, ProtocolError

CHAIN_ID = "x-ptx-service-chain-id"
TARGET_ID = "x-ptx-target-id"
NEXT_TARGET = "x-ptx-service-chain-next-target"
PREVIOUS_TARGET = "x-ptx-service-chain-previous-target"
INCOMING_CONNECTOR = "x-ptx-incomingdataspaceconnectoruri"
DATA_EXCHANGE_ID = "x-ptx-dataexchangeid"
CONTRACT_ID = "x-ptx-contractid"
CONTRACT_URL = "x-ptx-contracturl"
NEXT_NODE = "x-ptx-service-chain-next-node"

MAX_HEADER_LENGTH = 8192


class ChainContext(BaseModel):
    """Where a request sits in its service chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    chain_id: str = Field(description="x-ptx-service-chain-id, opaque, byte for byte")
    target_id: str = Field(description="x-ptx-target-id: this node's offering URI")
    next_target: str | None = Field(
        default=None, description="x-ptx-service-chain-next-target; absent on the final node"
    )
    previous_target: str | None = Field(
        default=None, description="x-ptx-service-chain-previous-target: the pre-chain source"
    )
    incoming_connector_uri: str | None = None
    data_exchange_id: str | None = None
    contract_id: str | None = None
    contract_url: str | None = None

    @property
    def is_final(self) -> bool:
        """True on the last node of the chain: there is nothing to resume."""
        return self.next_target is None


_OPTIONAL = {
    NEXT_TARGET: "next_target",
    PREVIOUS_TARGET: "previous_target",
    INCOMING_CONNECTOR: "incoming_connector_uri",
    DATA_EXCHANGE_ID: "data_exchange_id",
    CONTRACT_ID: "contract_id",
    CONTRACT_URL: "contract_url",
}


def lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names folded to lower case; the first occurrence of a name wins."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    folded: dict[str, str] = {}
    for name, value in items:
        folded.setdefault(name.lower(), value)
    return folded


def parse_chain_context(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> ChainContext:
    """Read the chain context from request headers.

    Raises :class:`ProtocolError` naming every missing or malformed header. An empty
    optional header counts as absent (an empty next target means the final node).
    """
    return read_chain_context(lower_headers(headers))


def read_chain_context(folded: Mapping[str, str]) -> ChainContext:
    """:func:`parse_chain_context` for headers whose names are already lower case (ASGI)."""
    problems: list[Problem] = []
    values: dict[str, str | None] = {}
    for header, attr in ((CHAIN_ID, "chain_id"), (TARGET_ID, "target_id")):
        value = folded.get(header)
        if value is None or value.strip() == "":
            problems.append(Problem(f"header.{header}", "missing"))
        elif len(value) > MAX_HEADER_LENGTH:
            problems.append(Problem(f"header.{header}", f"longer than {MAX_HEADER_LENGTH}"))
        else:
            values[attr] = value
    for header, attr in _OPTIONAL.items():
        value = folded.get(header)
        if value is not None and len(value) > MAX_HEADER_LENGTH:
            problems.append(Problem(f"header.{header}", f"longer than {MAX_HEADER_LENGTH}"))
        values[attr] = value if value and value.strip() else None
    if problems:
        raise ProtocolError("missing or malformed service-chain headers", 400, problems)
    return ChainContext.model_validate(values)


def chain_headers(context: ChainContext) -> dict[str, str]:
    """The headers a PDC would send for ``context`` (used by the simulated PDC and tests)."""
    headers = {CHAIN_ID: context.chain_id, TARGET_ID: context.target_id}
    for header, attr in _OPTIONAL.items():
        value = getattr(context, attr)
        if value is not None:
            headers[header] = value
    return headers
