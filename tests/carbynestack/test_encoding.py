"""Montgomery encoding, signed and fixed-point mapping, field and compute-config checks."""

from __future__ import annotations

import base64
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptx_chain_node.carbynestack.config import ComputeConfig
from ptx_chain_node.carbynestack.encoding import (
    TEST_FIELD,
    PrimeField,
    decode_element,
    decode_vector,
    encode_element,
    encode_vector,
    from_field,
    from_fixed,
    sum_shares,
    to_field,
    to_fixed,
)
from ptx_chain_node.errors import ProtocolError

P = 198766463529478683931867765928436695041
R = 141515903391459779531506841503331516415
RINV = 133854242216446749056083838363708373830
HALF = (P - 1) // 2

elements = st.integers(min_value=0, max_value=P - 1)
signed = st.integers(min_value=-HALF, max_value=HALF)


def test_reference_constants_are_consistent() -> None:
    assert pow(2, 128, P) == R
    assert R * RINV % P == 1
    assert (TEST_FIELD.prime, TEST_FIELD.r, TEST_FIELD.rinv) == (P, R, RINV)
    assert PrimeField.for_prime(P) == TEST_FIELD


@pytest.mark.parametrize(("r", "rinv", "at"), [(R + 1, RINV, "r"), (R, RINV + 1, "rinv")])
def test_inconsistent_field_is_refused(r: int, rinv: int, at: str) -> None:
    with pytest.raises(ProtocolError) as info:
        PrimeField(P, r, rinv)
    assert info.value.problems[0].field == at


@given(elements)
def test_element_wire_form_is_montgomery_little_endian(x: int) -> None:
    word = encode_element(TEST_FIELD, x)
    assert word == ((x * R) % P).to_bytes(16, "little")
    assert decode_element(TEST_FIELD, word) == x
    assert int.from_bytes(word, "little") * RINV % P == x


def test_known_words() -> None:
    assert encode_element(TEST_FIELD, 0) == bytes(16)
    assert encode_element(TEST_FIELD, 1) == R.to_bytes(16, "little")
    assert decode_element(TEST_FIELD, R.to_bytes(16, "little")) == 1


@given(st.lists(elements, max_size=20))
def test_vector_round_trip(xs: list[int]) -> None:
    text = encode_vector(TEST_FIELD, xs)
    raw = base64.b64decode(text)
    assert len(raw) == 16 * len(xs)
    assert decode_vector(TEST_FIELD, text) == xs
    assert decode_vector(TEST_FIELD, text, len(xs)) == xs


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("not base64!", None),
        (base64.b64encode(bytes(15)).decode(), None),
        (base64.b64encode(bytes(32)).decode(), 3),
        (base64.b64encode(P.to_bytes(16, "little")).decode(), None),
    ],
)
def test_bad_vectors_are_refused(text: str, count: int | None) -> None:
    with pytest.raises(ProtocolError):
        decode_vector(TEST_FIELD, text, count)


def test_out_of_range_element_is_refused() -> None:
    with pytest.raises(ProtocolError):
        encode_element(TEST_FIELD, P)
    with pytest.raises(ProtocolError):
        encode_element(TEST_FIELD, -1)


@given(signed)
def test_signed_round_trip(v: int) -> None:
    x = to_field(TEST_FIELD, v)
    assert 0 <= x < P
    assert x == v % P
    assert from_field(TEST_FIELD, x) == v


def test_signed_edges() -> None:
    assert to_field(TEST_FIELD, -1) == P - 1
    assert from_field(TEST_FIELD, P - 1) == -1
    assert from_field(TEST_FIELD, HALF) == HALF
    assert from_field(TEST_FIELD, HALF + 1) == -HALF
    for bad in (HALF + 1, -HALF - 1):
        with pytest.raises(ProtocolError):
            to_field(TEST_FIELD, bad)
    with pytest.raises(ProtocolError):
        to_field(TEST_FIELD, True)


@given(st.lists(elements, min_size=1, max_size=8), st.integers(min_value=2, max_value=5))
def test_additive_shares_sum_back(xs: list[int], n: int) -> None:
    shares = [[(x * (i + 7)) % P for x in xs] for i in range(n - 1)]
    last = [(x - sum(col)) % P for x, col in zip(xs, zip(*shares, strict=True), strict=True)]
    assert sum_shares(TEST_FIELD, [*shares, last]) == xs


@given(
    st.fractions(min_value=-(2**30), max_value=2**30, max_denominator=10**6),
    st.integers(min_value=0, max_value=32),
)
def test_fixed_point_round_trip_within_half_a_step(q: Fraction, f: int) -> None:
    scaled = to_fixed(q, f)
    assert abs(from_fixed(scaled, f) - q) <= Fraction(1, 2 ** (f + 1))


def test_fixed_point_is_exact_for_dyadic_values() -> None:
    assert to_fixed(2.5, 16) == 5 * 2**15
    assert from_fixed(-(3 * 2**14), 16) == Fraction(-3, 4)
    with pytest.raises(ProtocolError):
        to_fixed(float("nan"), 16)


def _provider(i: int) -> dict[str, object]:
    host = f"http://vcp{i}.example"
    return {
        "id": i,
        "amphoraServiceUrl": f"{host}/amphora",
        "castorServiceUrl": f"{host}/castor",
        "ephemeralServiceUrl": f"{host}/",
        "baseUrl": f"{host}/",
        "oauth2ClientId": "ignored",
    }


def test_compute_config_upstream_shape() -> None:
    raw = {
        "prime": str(P),
        "r": R,
        "rinv": RINV,
        "noSslValidation": True,
        "trustedCertificates": [],
        "providers": [_provider(1), _provider(2)],
    }
    config = ComputeConfig.parse(raw)
    assert config.field == TEST_FIELD
    assert config.providers[1].amphora == "http://vcp2.example/amphora"
    assert config.providers[0].ephemeral == "http://vcp1.example"
    dumped = config.as_json()
    assert dumped["prime"] == P
    assert set(dumped["providers"][0]) == {
        "id",
        "amphoraServiceUrl",
        "castorServiceUrl",
        "ephemeralServiceUrl",
        "baseUrl",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"rinv": RINV + 1},
        {"providers": [_provider(1)]},
        {"providers": [_provider(1), _provider(1)]},
        {"providers": [_provider(1), {**_provider(2), "amphoraServiceUrl": "ftp://x"}]},
    ],
)
def test_bad_compute_config_is_refused(change: dict[str, object]) -> None:
    raw = {"prime": P, "r": R, "rinv": RINV, "providers": [_provider(1), _provider(2)]}
    with pytest.raises(ProtocolError):
        ComputeConfig.parse({**raw, **change})
