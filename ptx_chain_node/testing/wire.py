"""What the real PDC puts on the wire when it calls a chain resource: headers and body.

Pure functions, so tests can also build a PDC-shaped request by hand::

    headers = pdc_headers(context, representation)
    body = resource_body(data, contract_url, join_params({"custom": "custom"}), representation)
"""

from __future__ import annotations

from typing import Any

from ptx_chain_node.chain import (
    CHAIN_ID,
    CONTRACT_ID,
    CONTRACT_URL,
    DATA_EXCHANGE_ID,
    INCOMING_CONNECTOR,
    NEXT_NODE,
    NEXT_TARGET,
    PREVIOUS_TARGET,
    TARGET_ID,
    ChainContext,
    chain_headers,
)
from ptx_chain_node.testing.chainspec import DataSource, Representation

JsonValue = Any

#: The header names exactly as the PDC writes them (mixed case).
PDC_HEADER_CASE: dict[str, str] = {
    CHAIN_ID: "x-ptx-service-chain-id",
    TARGET_ID: "x-ptx-target-id",
    NEXT_TARGET: "x-ptx-service-chain-next-target",
    PREVIOUS_TARGET: "x-ptx-service-chain-previous-target",
    INCOMING_CONNECTOR: "x-ptx-incomingDataspaceConnectorURI",
    DATA_EXCHANGE_ID: "x-ptx-dataExchangeId",
    CONTRACT_ID: "x-ptx-contractId",
    CONTRACT_URL: "x-ptx-contractURL",
    NEXT_NODE: "x-ptx-service-chain-next-node",
}

#: axios' default Accept header, which the PDC sends.
ACCEPT = "application/json, text/plain, */*"


def pdc_headers(
    context: ChainContext,
    representation: Representation | None = None,
    *,
    next_node: str | None = None,
) -> dict[str, str]:
    """The chain headers in the PDC's case, plus content type and apiKey when configured."""
    headers = {PDC_HEADER_CASE.get(k, k): v for k, v in chain_headers(context).items()}
    if next_node is not None:
        headers[PDC_HEADER_CASE[NEXT_NODE]] = next_node
    headers["accept"] = ACCEPT
    if representation is not None:
        headers["content-type"] = representation.content_type
        if representation.method == "apiKey":
            headers[representation.api_key_header] = representation.api_key
    return headers


def source_headers(context: ChainContext, source: DataSource, next_node: str) -> dict[str, str]:
    """Headers of the ``GET`` on a (pre-chain) provider's data resource."""
    headers = pdc_headers(context, next_node=next_node)
    if source.api_key_header and source.api_key is not None:
        headers[source.api_key_header] = source.api_key
    return headers


def resource_body(
    data: JsonValue,
    contract_url: str,
    params: JsonValue,
    representation: Representation,
    *,
    previous_node_params: JsonValue = None,
    has_previous_node_params: bool = False,
) -> JsonValue:
    """The body the PDC sends: the wrapper, or bare ``data`` under skipBodyProcessing.

    ``basic`` credentials go into the top-level JSON object (never an Authorization header).
    """
    body: JsonValue
    if representation.skip_body_processing:
        body = data
    else:
        body = {"data": data, "contract": contract_url, "params": params}
        if has_previous_node_params:
            body["previousNodeParams"] = previous_node_params
    if representation.method == "basic" and isinstance(body, dict):
        body = {**body, "username": representation.username, "password": representation.password}
    return body


def merge_additional(origin: JsonValue, fetched: list[tuple[DataSource, JsonValue]]) -> JsonValue:
    """``data`` of a node with a pre-chain: ``{"origin", "additionalData": [...]}``.

    Each entry is ``{"participant": {"name", "connectorUrl", "id"}, "data"}``; the documented
    ``params`` is never sent, as with the real PDC.
    """
    return {
        "origin": origin,
        "additionalData": [
            {"participant": source.participant.model_dump(by_alias=True), "data": data}
            for source, data in fetched
        ],
    }
