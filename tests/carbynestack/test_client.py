"""CarbyneStackClient against the fake VCPs: upload/read, checks, auth, failures, delete."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
import structlog.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptx_chain_node.carbynestack.client import (
    LENGTH_TAG,
    CarbyneStackClient,
    IntegrityError,
    Tag,
    VcpError,
)
from ptx_chain_node.carbynestack.config import ComputeConfig
from ptx_chain_node.carbynestack.encoding import TEST_FIELD, Shares, check_shares, decode_vector
from ptx_chain_node.carbynestack.templates import render
from ptx_chain_node.errors import AuthError, ProtocolError
from ptx_chain_node.testing.fake_vcp import FakeCarbyneStack

TOKEN = "token-for-tests"
HALF = TEST_FIELD.half
P = TEST_FIELD.prime


@pytest.fixture
def fake() -> FakeCarbyneStack:
    return FakeCarbyneStack(3, token=TOKEN, game_timeout=0.5)


@pytest.fixture
async def http(fake: FakeCarbyneStack) -> AsyncIterator[httpx.AsyncClient]:
    async with fake.client() as client:
        yield client


@pytest.fixture
def client(fake: FakeCarbyneStack, http: httpx.AsyncClient) -> CarbyneStackClient:
    return CarbyneStackClient(fake.config, http, TOKEN, timeout=2.0, execute_timeout=3.0)


def _posts(fake: FakeCarbyneStack) -> list[tuple[int, str, str]]:
    return [r for r in fake.requests if r[1] == "POST"]


# -- upload and read ----------------------------------------------------------------------


async def _round_trip(values: list[int]) -> None:
    fake = FakeCarbyneStack(3, token=TOKEN)
    async with fake.client() as http:
        client = CarbyneStackClient(fake.config, http, TOKEN)
        sid = await client.upload(values, {"owner": "party-a"})
        assert uuid.UUID(sid).version == 4
        assert fake.held_by(sid) == [True, True, True]
        assert fake.reveal(sid) == values  # what the VCPs hold, summed
        assert await client.read(sid) == values  # what the client recovers
        # no single VCP holds the values in clear (shares are uniform in the field)
        stored = [vcp.secrets[sid].shares for vcp in fake.vcps]
        assert sum(share != [v % P for v in values] for share in stored) >= 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63),
            st.integers(min_value=-HALF, max_value=HALF),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_upload_then_read_round_trips_signed_integers(values: list[int]) -> None:
    asyncio.run(_round_trip(values))


async def test_upload_posts_masked_values_and_tags(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    values = [5, -7, 11]
    sid = await client.upload(values, [Tag("source", "party-b")])
    assert fake.masked_input_posts == 3
    assert [r[2] for r in _posts(fake)] == ["/amphora/masked-inputs"] * 3
    tags = {t["key"]: t for t in fake.tags(sid)}
    assert tags["source"]["value"] == "party-b"
    assert tags[LENGTH_TAG] == {"key": LENGTH_TAG, "value": "3", "valueType": "LONG"}
    assert [t.key for t in await client.tags(sid)] == ["source", LENGTH_TAG]
    assert await client.length(sid) == 3


async def test_masks_are_handed_out_once(fake: FakeCarbyneStack, http: httpx.AsyncClient) -> None:
    url = "http://vcp1.carbyne.test/amphora/input-masks"
    params = {"requestId": str(uuid.uuid4()), "count": "2"}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = await http.get(url, params=params, headers=headers)
    assert first.status_code == 200
    assert len(decode_vector(TEST_FIELD, first.json()["wShares"])) == 2
    again = await http.get(url, params=params, headers=headers)
    assert again.status_code == 409


def test_check_shares_finds_the_bad_position() -> None:
    s, r, v = [3, 4], [5, 6], [7, 8]
    good = Shares(s, r, v, [15, 24], [35, 48])
    assert check_shares(P, good) == []
    assert check_shares(P, Shares(s, r, v, [15, 25], [35, 48])) == [1]
    assert check_shares(P, Shares(s, r, v, [15, 24], [36, 48])) == [0]


@pytest.mark.parametrize(("vcp", "share"), [(0, "w"), (1, "u"), (2, "w")])
async def test_corrupted_masks_are_detected_and_nothing_is_posted(
    fake: FakeCarbyneStack, client: CarbyneStackClient, vcp: int, share: Literal["w", "u"]
) -> None:
    fake.corrupt(vcp, share)
    with pytest.raises(IntegrityError) as info:
        await client.upload([1, 2, 3])
    assert info.value.status == 502
    assert _posts(fake) == []
    assert fake.masked_input_posts == 0
    assert all(not vcp.secrets for vcp in fake.vcps)


async def test_corrupted_read_is_detected(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    sid = await client.upload([42, -42])
    fake.corrupt(1, "u")
    with pytest.raises(IntegrityError):
        await client.read(sid)
    fake.corrupt(None)
    assert await client.read(sid) == [42, -42]


# -- authentication -----------------------------------------------------------------------


async def test_wrong_token_is_refused(fake: FakeCarbyneStack, http: httpx.AsyncClient) -> None:
    client = CarbyneStackClient(fake.config, http, "not-the-token")
    with pytest.raises(AuthError) as info:
        await client.upload([1])
    assert info.value.status == 401
    assert "not-the-token" not in str(info.value)
    assert _posts(fake) == []


async def test_missing_bearer_token_gets_401(
    fake: FakeCarbyneStack, http: httpx.AsyncClient
) -> None:
    for url in (
        f"http://vcp2.carbyne.test/amphora/input-masks?requestId={uuid.uuid4()}&count=1",
        f"http://vcp3.carbyne.test/amphora/secret-shares/{uuid.uuid4()}?requestId=x",
    ):
        assert (await http.get(url)).status_code == 401
    answer = await http.post("http://vcp1.carbyne.test/ephemeral", json={})
    assert answer.status_code == 401
    with pytest.raises(ProtocolError):
        CarbyneStackClient(fake.config, http, "")


async def test_per_vcp_tokens(http: httpx.AsyncClient) -> None:
    tokens = {1: "alpha", 2: "beta", 3: "gamma"}
    fake = FakeCarbyneStack(3, token=tokens)
    async with fake.client() as own:
        good = CarbyneStackClient(fake.config, own, tokens)
        sid = await good.upload([9])
        assert await good.read(sid) == [9]
        bad = CarbyneStackClient(fake.config, own, {**tokens, 3: "alpha"})
        with pytest.raises(AuthError) as info:
            await bad.read(sid)
        assert "VCP 3" in info.value.message
        assert "alpha" not in info.value.message
    with pytest.raises(ProtocolError):
        CarbyneStackClient(fake.config, http, {1: "alpha"})


# -- failures -----------------------------------------------------------------------------


async def test_unreachable_vcp_during_upload_names_it(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    fake.set_unreachable(1)
    with pytest.raises(VcpError) as info:
        await client.upload([1, 2])
    assert [p.field for p in info.value.problems] == ["providers[2]"]
    assert "unreachable" in info.value.message
    assert fake.masked_input_posts == 0


async def test_vcp_answering_500_on_read(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    sid = await client.upload([3])
    fake.set_failing(2)
    with pytest.raises(VcpError) as info:
        await client.read(sid)
    assert info.value.status == 502
    assert "VCP 3" in info.value.message and "500" in info.value.message


async def test_failed_post_cleans_up_the_other_vcps(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    fake.set_failing(2, only="POST")  # VCP 3 hands out masks, then fails the masked input
    with pytest.raises(VcpError) as info:
        await client.upload([1, 2, 3])
    assert [p.field for p in info.value.problems] == ["providers[3]"]
    assert fake.masked_input_posts == 2  # VCPs 1 and 2 stored their shares ...
    assert all(not vcp.secrets for vcp in fake.vcps)  # ... and the client deleted them again


async def test_execute_with_one_vcp_down_fails_clearly_within_the_timeout(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    a = await client.upload([1, 2])
    program = render("sum", [2])
    fake.set_unreachable(0)
    started = time.monotonic()
    with pytest.raises(VcpError) as info:
        await client.execute(program.code, [a])
    elapsed = time.monotonic() - started
    assert elapsed < fake.game_timeout + 1.0
    fields = {p.field: p.problem for p in info.value.problems}
    assert "unreachable" in fields["providers[1]"]
    assert "500" in fields["providers[2]"] and "500" in fields["providers[3]"]


async def test_execute_with_a_vcp_missing_from_the_config_times_out_with_500(
    fake: FakeCarbyneStack, http: httpx.AsyncClient
) -> None:
    full = CarbyneStackClient(fake.config, http, TOKEN)
    a = await full.upload([4, 5])
    raw = fake.config.as_json()
    partial = CarbyneStackClient(
        ComputeConfig.parse({**raw, "providers": raw["providers"][:2]}), http, TOKEN
    )
    started = time.monotonic()
    with pytest.raises(VcpError) as info:
        await partial.execute(render("sum", [2]).code, [a])
    assert time.monotonic() - started < fake.game_timeout + 1.0
    assert all("500" in p.problem for p in info.value.problems)
    assert len(info.value.problems) == 2


async def test_client_deadline_applies_when_a_vcp_hangs(
    fake: FakeCarbyneStack, http: httpx.AsyncClient
) -> None:
    fake.game_timeout = 5.0
    raw = fake.config.as_json()
    config = ComputeConfig.parse({**raw, "providers": raw["providers"][:2]})
    client = CarbyneStackClient(config, http, TOKEN, execute_timeout=0.3)
    a = await CarbyneStackClient(fake.config, http, TOKEN).upload([1])
    started = time.monotonic()
    with pytest.raises(VcpError) as info:
        await client.execute(render("sum", [1]).code, [a])
    assert time.monotonic() - started < 2.0
    assert info.value.status == 504
    assert "within 0.3 s" in info.value.message


# -- execute and delete -------------------------------------------------------------------


async def test_execute_returns_the_game_id_as_result_secret(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    a = await client.upload([1, 2, 3])
    b = await client.upload([-10])
    game = str(uuid.uuid4())
    result = await client.execute(render("sum", [3, 1]).code, [a, b], game_id=game)
    assert result == game
    assert await client.read(result) == [-4]
    assert {"key": "gameID", "value": game, "valueType": "STRING"} in fake.tags(result)
    activations = [r for r in fake.requests if r[2] == "/ephemeral"]
    assert sorted(r[0] for r in activations) == [0, 1, 2]


async def test_execute_refuses_code_without_a_known_program(client: CarbyneStackClient) -> None:
    a = await client.upload([1])
    with pytest.raises(VcpError):
        await client.execute("print_ln('hello')", [a])
    with pytest.raises(ProtocolError):
        await client.execute("x", ["not-a-uuid"])


async def test_delete_removes_the_secret_at_every_vcp(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    sid = await client.upload([7, 8])
    await client.delete(sid)
    assert fake.held_by(sid) == [False, False, False]
    deletes = [r for r in fake.requests if r[1] == "DELETE"]
    assert sorted(r[0] for r in deletes) == [0, 1, 2]
    with pytest.raises(VcpError) as info:
        await client.read(sid)
    assert "404" in info.value.message
    with pytest.raises(VcpError):
        await client.delete(sid)


def test_repr_hides_the_token(fake: FakeCarbyneStack) -> None:
    async def build() -> str:
        async with fake.client() as http:
            return repr(CarbyneStackClient(fake.config, http, TOKEN))

    assert TOKEN not in asyncio.run(build())
    assert base64.b64encode(TOKEN.encode()).decode() not in asyncio.run(build())


async def test_logs_carry_neither_tokens_nor_values(
    fake: FakeCarbyneStack, client: CarbyneStackClient
) -> None:
    secret_values = [987654321, -123456789]
    with structlog.testing.capture_logs() as events:
        sid = await client.upload(secret_values)
        await client.read(sid)
        result = await client.execute(render("sum", [2]).code, [sid])
        await client.read(result)
        fake.corrupt(0, "w")
        with pytest.raises(IntegrityError):
            await client.upload([555555555])
    text = repr(events)
    assert events  # something was logged ...
    for needle in (TOKEN, "987654321", "123456789", "864197532", "555555555"):
        assert needle not in text  # ... but no token, value or result
