"""Chain context from headers: case-insensitive, opaque chain id, clear errors."""

from __future__ import annotations

import pytest

from ptx_chain_node.chain import chain_headers, parse_chain_context
from ptx_chain_node.errors import ProtocolError

CHAIN_ID = "@supervisor:" + "ab" * 64 + "-1744205196870-1bcec18e"


def pdc_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "x-ptx-service-chain-id": CHAIN_ID,
        "x-ptx-target-id": "https://catalog.test/v1/catalog/serviceofferings/mpc",
        "x-ptx-service-chain-next-target": "https://catalog.test/v1/catalog/serviceofferings/next",
        "x-ptx-service-chain-previous-target": "https://catalog.test/so/pre",
        "x-ptx-incomingDataspaceConnectorURI": "https://consumer.pdc/",
        "x-ptx-dataExchangeId": "67f6758caed89eb179984140",
        "x-ptx-contractId": "67f3dc0a63abc4c89b80c161",
        "x-ptx-contractURL": "https://contract.test/contracts/67f3dc0a63abc4c89b80c161",
    }
    headers.update(overrides)
    return headers


def test_every_header_is_read_case_insensitively() -> None:
    mixed = {
        name.upper() if i % 2 else name: v for i, (name, v) in enumerate(pdc_headers().items())
    }
    context = parse_chain_context(mixed)
    assert context.chain_id == CHAIN_ID
    assert context.target_id.endswith("/mpc")
    assert context.next_target is not None and context.next_target.endswith("/next")
    assert context.previous_target == "https://catalog.test/so/pre"
    assert context.incoming_connector_uri == "https://consumer.pdc/"
    assert context.data_exchange_id == "67f6758caed89eb179984140"
    assert context.contract_id == "67f3dc0a63abc4c89b80c161"
    assert context.contract_url is not None and context.contract_url.endswith("c161")
    assert not context.is_final


def test_chain_id_is_opaque_and_never_cut() -> None:
    odd = "@supervisor:" + "f" * 4000 + " spaces and ünïcode? -x-"
    context = parse_chain_context(pdc_headers(**{"x-ptx-service-chain-id": odd}))
    assert context.chain_id == odd


def test_absent_or_empty_next_target_means_final_node() -> None:
    headers = pdc_headers()
    del headers["x-ptx-service-chain-next-target"]
    assert parse_chain_context(headers).is_final
    assert parse_chain_context(pdc_headers(**{"x-ptx-service-chain-next-target": " "})).is_final


def test_missing_chain_headers_are_named() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_chain_context({"content-type": "application/json"})
    fields = {p.field for p in caught.value.problems}
    assert fields == {"header.x-ptx-service-chain-id", "header.x-ptx-target-id"}
    assert caught.value.status == 400


def test_oversized_header_is_refused() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_chain_context(pdc_headers(**{"x-ptx-target-id": "x" * 9000}))
    assert caught.value.problems[0].field == "header.x-ptx-target-id"


def test_round_trip_through_chain_headers() -> None:
    context = parse_chain_context(pdc_headers())
    assert parse_chain_context(chain_headers(context)) == context
