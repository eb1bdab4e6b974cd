"""Every body variant the real PDC sends, and malformed bodies."""

from __future__ import annotations

import json

import pytest

from ptx_chain_node.errors import ProtocolError
from ptx_chain_node.payload import decode_json, parse_payload, split_credentials, threads

ROWS = [{"salary": 52000, "category": "engineer"}, {"salary": 48000, "category": "nurse"}]


def test_wrapper_with_object_params() -> None:
    body = {"data": ROWS, "contract": "https://contract.test/c/1", "params": {"foo": "bar"}}
    payload = parse_payload(decode_json(json.dumps(body).encode()))
    assert payload.wrapped
    assert payload.data == ROWS
    assert payload.contract == "https://contract.test/c/1"
    assert payload.params_object == {"foo": "bar"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [("custom", {"value": "custom"}), ("", {}), (None, {}), ({"a": 1}, {"a": 1})],
)
def test_params_as_object_string_or_empty(params: object, expected: dict[str, object]) -> None:
    payload = parse_payload({"data": ROWS, "params": params})
    assert payload.params_object == expected
    assert payload.params != ""  # "" is normalised to absent


def test_previous_node_params_after_a_resumed_node() -> None:
    payload = parse_payload({"data": {"x": 1}, "previousNodeParams": {"from": "node-1"}})
    assert payload.previous_node_params == {"from": "node-1"}


def test_merge_form_gives_one_thread_per_source() -> None:
    data = {
        "origin": ROWS,
        "additionalData": [
            {
                "participant": {"name": "B", "connectorUrl": "https://b.pdc/", "id": "p-b"},
                "data": [{"salary": 1}],
            },
            {"participant": {"name": "C", "id": "p-c"}, "data": {"salary": 2}},
        ],
    }
    found = threads(parse_payload({"data": data, "contract": "c"}))
    assert [t.role for t in found] == ["origin", "additional", "additional"]
    assert found[0].data == ROWS
    assert found[1].participant is not None and found[1].participant.id == "p-b"
    assert found[1].participant.connector_url == "https://b.pdc/"
    assert found[2].data == {"salary": 2}


def test_bare_data_when_skip_body_processing() -> None:
    assert not parse_payload(ROWS).wrapped
    assert parse_payload(ROWS).data == ROWS
    as_object = parse_payload({"salary": 1})
    assert not as_object.wrapped and as_object.data == {"salary": 1}
    forced = parse_payload({"data": [1]}, skip_body_processing=True)
    assert not forced.wrapped and forced.data == {"data": [1]}


def test_basic_credentials_are_read_then_stripped() -> None:
    document, creds = split_credentials({"data": ROWS, "username": "pdc", "password": "s3cret"})
    assert creds is not None
    assert creds.username == "pdc" and creds.password.get_secret_value() == "s3cret"
    assert document == {"data": ROWS}
    assert "s3cret" not in repr(creds)


def test_json_under_any_content_type_and_bad_json() -> None:
    assert decode_json(b'{"data": [1]}') == {"data": [1]}
    for raw in (b"", b"   ", b"{not json", b"\xff\xfe"):
        with pytest.raises(ProtocolError) as caught:
            decode_json(raw)
        assert caught.value.problems[0].field == "body"


def test_wrong_types_are_named() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_payload({"data": ROWS, "contract": 12})
    assert caught.value.status == 422
    assert caught.value.problems[0].field == "body.contract"
    with pytest.raises(ProtocolError) as caught:
        parse_payload({"data": {"origin": [], "additionalData": "nope"}})
    assert caught.value.problems[0].field.startswith("body.data.additionalData")


def test_stored_payload_round_trips_and_reads_the_older_pydantic_dump() -> None:
    from ptx_chain_node.payload import ChainPayload, dump_payload, load_payload

    data = {"origin": ROWS, "additionalData": [{"participant": {"id": "p"}, "data": ROWS}]}
    for payload in (
        parse_payload({"data": data, "contract": "c", "params": {"a": 1}, "previousNodeParams": 2}),
        parse_payload(ROWS),
        ChainPayload(data={"big": 2**63, "text": "é\u2028"}, params="custom"),
    ):
        text = dump_payload(payload)
        assert load_payload(text) == payload
        assert load_payload(text.encode()) == payload
        assert load_payload(payload.model_dump_json(by_alias=True)) == payload
        assert json.loads(text) == json.loads(payload.model_dump_json(by_alias=True))


def test_body_json_is_strict() -> None:
    # orjson: RFC 8259 only (JSON.stringify never writes these; the stdlib accepted them).
    for raw in (b'{"data": NaN}', b'{"data": Infinity}', b'{"data": "\\ud800"}'):
        with pytest.raises(ProtocolError) as caught:
            decode_json(raw)
        assert caught.value.problems[0].field == "body"
