"""CarbyneStackEngine over the fake VCPs: programs on 3 parties' random data vs plaintext."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from fractions import Fraction
from itertools import pairwise
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptx_chain_node.carbynestack.client import CarbyneStackClient, IntegrityError, VcpError
from ptx_chain_node.carbynestack.encoding import (
    PrimeField,
    decode_vector,
    encode_element,
    to_field,
)
from ptx_chain_node.carbynestack.engine import CarbyneStackEngine, JobState
from ptx_chain_node.carbynestack.templates import parse_marker, render
from ptx_chain_node.errors import NotFoundError, ProtocolError
from ptx_chain_node.testing.fake_vcp import FakeCarbyneStack

TOKEN = "engine-token"
SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

party_data = st.lists(
    st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=1, max_size=12),
    min_size=3,
    max_size=3,
)


async def _run(parties: list[list[int]], program: str, params: dict[str, Any]) -> list[Any]:
    """Three input parties upload, the engine runs ``program``, returns the decoded result."""
    fake = FakeCarbyneStack(3, token=TOKEN)
    async with fake.client() as http:
        uploads = [CarbyneStackClient(fake.config, http, TOKEN) for _ in parties]
        ids = await asyncio.gather(*(c.upload(v) for c, v in zip(uploads, parties, strict=True)))
        engine = CarbyneStackEngine(CarbyneStackClient(fake.config, http, TOKEN))
        await engine.register_inputs(ids)
        assert engine.inputs == {i: len(v) for i, v in zip(ids, parties, strict=True)}
        job = await engine.run(program, params)
        result = await engine.fetch_result(job)
        assert engine.status(job).state is JobState.SUCCEEDED
        assert result.program == program
        return list(result.values)


@SETTINGS
@given(party_data)
def test_sum_of_three_parties(parties: list[list[int]]) -> None:
    assert asyncio.run(_run(parties, "sum", {})) == [sum(sum(p) for p in parties)]


@SETTINGS
@given(party_data, st.integers(min_value=4, max_value=16))
def test_mean_of_three_parties(parties: list[list[int]], frac_bits: int) -> None:
    # |sum| <= 36e6 < 2^26: fits int_bits = 44 - frac_bits >= 28
    params = {"frac_bits": frac_bits, "int_bits": 44 - frac_bits}
    (mean,) = asyncio.run(_run(parties, "mean", params))
    values = [x for p in parties for x in p]
    exact = Fraction(sum(values), len(values))
    assert isinstance(mean, Fraction)
    assert abs(mean - exact) <= Fraction(1, 2 ** (frac_bits - 1))


@SETTINGS
@given(
    party_data,
    st.lists(st.integers(min_value=-(10**6), max_value=10**6), min_size=2, max_size=8, unique=True),
)
def test_histogram_of_three_parties(parties: list[list[int]], edges: list[int]) -> None:
    edges = sorted(edges)
    counts = asyncio.run(_run(parties, "histogram", {"edges": edges}))
    values = [x for p in parties for x in p]
    expected = [sum(1 for x in values if lo <= x < hi) for lo, hi in pairwise(edges)]
    assert counts == expected


# -- the engine's own behaviour -----------------------------------------------------------


@pytest.fixture
def fake() -> FakeCarbyneStack:
    return FakeCarbyneStack(2, token=TOKEN, game_timeout=0.4)


@pytest.fixture
async def http(fake: FakeCarbyneStack) -> AsyncIterator[httpx.AsyncClient]:
    async with fake.client() as client:
        yield client


@pytest.fixture
async def engine(
    fake: FakeCarbyneStack, http: httpx.AsyncClient
) -> AsyncIterator[CarbyneStackEngine]:
    engine = CarbyneStackEngine(CarbyneStackClient(fake.config, http, TOKEN, execute_timeout=2.0))
    yield engine
    await engine.aclose()


async def test_an_input_party_can_follow_the_plan_by_hand(
    fake: FakeCarbyneStack, http: httpx.AsyncClient, engine: CarbyneStackEngine
) -> None:
    plan = engine.input_plan()
    assert plan.as_json()["prime"] == str(fake.field.prime)
    field = PrimeField(plan.prime, plan.r, plan.rinv)
    values = [3, -1, 4, -1, 5]
    sid = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answers = [
        (
            await http.get(
                f"{url}/input-masks",
                params={"requestId": sid, "count": len(values)},
                headers=headers,
            )
        ).json()
        for url in plan.amphora_urls.values()
    ]
    names = ("secretShares", "rShares", "vShares", "wShares", "uShares")
    s, r, v, w, u = (
        [
            sum(col) % field.prime
            for col in zip(*(decode_vector(field, a[n]) for a in answers), strict=True)
        ]
        for n in names
    )
    assert all(wk == sk * rk % field.prime for sk, rk, wk in zip(s, r, w, strict=True))
    assert all(uk == vk * rk % field.prime for vk, rk, uk in zip(v, r, u, strict=True))
    masked = [(to_field(field, x) - sk) % field.prime for x, sk in zip(values, s, strict=True)]
    body = {
        "secretId": sid,
        "data": [{"value": _b64(encode_element(field, m))} for m in masked],
        "tags": [{"key": plan.length_tag, "value": str(len(values)), "valueType": "LONG"}],
    }
    for url in plan.amphora_urls.values():
        posted = await http.post(f"{url}/masked-inputs", json=body, headers=headers)
        assert posted.status_code == 201
    await engine.register_inputs([sid])
    assert engine.inputs == {sid: 5}
    job = await engine.run("sum")
    assert (await engine.fetch_result(job)).values == [10]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_explicit_lengths_and_subsets(engine: CarbyneStackEngine) -> None:
    client = engine.client
    a, b = await client.upload([1, 2]), await client.upload([30])
    await engine.register_inputs([a, b], [2, 1])
    job = await engine.run("sum", secret_ids=[b])
    assert (await engine.fetch_result(job)).values == [30]
    with pytest.raises(ProtocolError):
        await engine.register_inputs([a])  # twice
    with pytest.raises(ProtocolError):
        await engine.run("sum", secret_ids=[str(uuid.uuid4())])
    with pytest.raises(ProtocolError):
        await engine.run("median")
    with pytest.raises(ProtocolError):
        await engine.run("histogram", {"edges": [3, 1]})
    with pytest.raises(NotFoundError):
        engine.status(str(uuid.uuid4()))


async def test_wrong_registered_length_fails_the_job(engine: CarbyneStackEngine) -> None:
    a = await engine.client.upload([1, 2, 3])
    await engine.register_inputs([a], [2])  # MP-SPDZ would read the wrong number of values
    job = await engine.run("sum")
    status = await engine.wait(job)
    assert status.state is JobState.FAILED
    assert status.error and "500" in status.error
    with pytest.raises(VcpError):
        await engine.fetch_result(job)


async def test_mean_overflow_is_reported_not_garbage(engine: CarbyneStackEngine) -> None:
    a = await engine.client.upload([2**20, 2**20])
    await engine.register_inputs([a])
    job = await engine.run("mean", {"frac_bits": 16, "int_bits": 20})
    status = await engine.wait(job)
    assert status.state is JobState.FAILED
    assert status.error is not None and "500" in status.error and "sfix overflow" in status.error


async def test_job_runs_in_background_and_fails_clearly_when_a_vcp_is_down(
    fake: FakeCarbyneStack, engine: CarbyneStackEngine
) -> None:
    a = await engine.client.upload([5])
    await engine.register_inputs([a])
    fake.set_unreachable(1)
    job = await engine.run("mean")
    assert engine.status(job).state is JobState.RUNNING
    status = await asyncio.wait_for(engine.wait(job), fake.game_timeout + 1.0)
    assert status.state is JobState.FAILED
    assert status.error is not None and "VCP 2" in status.error


async def test_result_read_is_integrity_checked(
    fake: FakeCarbyneStack, engine: CarbyneStackEngine
) -> None:
    a = await engine.client.upload([5, 6])
    await engine.register_inputs([a])
    job = await engine.run("sum")
    await engine.wait(job)
    fake.corrupt(0, "w")
    with pytest.raises(IntegrityError):
        await engine.fetch_result(job)


async def test_delete_inputs_and_result(fake: FakeCarbyneStack, engine: CarbyneStackEngine) -> None:
    a = await engine.client.upload([1])
    await engine.register_inputs([a])
    job = await engine.run("sum")
    await engine.fetch_result(job)
    await engine.delete([a, job])
    assert fake.held_by(a) == [False, False]
    assert fake.held_by(job) == [False, False]
    assert engine.inputs == {}


def test_templates_follow_the_ephemeral_convention() -> None:
    program = render("histogram", [3, 4, 5], {"edges": [0, 10, 20]})
    assert program.output_length == 2
    lines = program.code.splitlines()
    assert parse_marker(program.code) == ("histogram", {"edges": [0, 10, 20], "lengths": [3, 4, 5]})
    assert "acceptclientconnection(socket_id, port)" in lines
    assert "data = Array.create_from(sint.read_from_socket(socket_id, 12))" in lines
    assert lines[-1] == "sint.write_to_socket(socket_id, counts)"
    single = render("mean", [1], {"frac_bits": 8})
    assert "data[0] = sint.read_from_socket(socket_id, 1)" in single.code
    assert single.output_kind == "fixed" and single.frac_bits == 8
    for bad in ({"frac_bits": 40}, {"bins": 3}):
        with pytest.raises(ProtocolError):
            render("mean", [1], bad)
    with pytest.raises(ProtocolError):
        render("sum", [])
