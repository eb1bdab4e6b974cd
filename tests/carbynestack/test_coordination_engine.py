"""The ``carbynestack`` coordination engine end to end: coordinator, fake VCPs, clients.

Three input parties register with the coordinator, upload their columns with
CarbyneStackClient using the compute config the coordinator hands out, and confirm the
secret ids; the run executes on the fake VCPs; the output party reads the result secrets
with its own client and they equal the plaintext computed on the same random data.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptx_chain_node.carbynestack import CarbyneStackClient, ComputeConfig, IntegrityError
from ptx_chain_node.carbynestack.coordination_engine import (
    ENGINE_NAME,
    TOKEN_ENV,
    CarbyneStackCoordinationEngine,
)
from ptx_chain_node.carbynestack.coordination_programs import HISTOGRAM_PROGRAM, result_values
from ptx_chain_node.coordination import (
    CollaborationRecord,
    CollaborationRequest,
    CollabState,
    Coordinator,
    StaticProgramRegistry,
)
from ptx_chain_node.coordination.config import (
    ENGINE_FACTORIES,
    CoordinationService,
    CoordinationSettings,
)
from ptx_chain_node.coordination.programs import BUILTIN_PROGRAMS
from ptx_chain_node.errors import PtxError
from ptx_chain_node.store import Database
from ptx_chain_node.testing.fake_vcp import FakeCarbyneStack

TOKEN = "vcp-token"
OPERATOR = "operator-token"
PARTIES = ("a", "b", "c")
COLUMNS = ("stays", "cost")
FAST = {
    "engines": [],
    "sweep_interval": 0.05,
    "run_poll_interval": 0.01,
    "notify_initial_backoff": 0.01,
    "notify_max_backoff": 0.05,
    "notify_deadline": 2.0,
}


@dataclass
class World:
    """A coordinator with the carbynestack engine, a fake cloud and the parties' client."""

    cloud: FakeCarbyneStack
    engine: CarbyneStackCoordinationEngine
    coordinator: Coordinator
    http: httpx.AsyncClient
    notified: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    async def create(self, program: dict[str, Any], **overrides: Any) -> str:
        body: dict[str, Any] = {
            "name": "stays",
            "program": program,
            "input_specification": {
                "columns": [
                    {"name": "stays", "type": "integer", "min": 0, "max": 60},
                    {"name": "cost", "type": "fixed", "scale": 2, "min": -500, "max": 5000},
                ],
                "max_rows": 1000,
            },
            "input_parties": [{"id": p, "identity": f"did:web:{p}.example"} for p in PARTIES],
            "output_parties": [{"id": "out", "endpoint": "http://notify.test/client"}],
            "engine": ENGINE_NAME,
            "compute_config": self.cloud.config.as_json(),
            "approval": "on_confirm",
        }
        body.update(overrides)
        request = CollaborationRequest.model_validate(body)
        record, outputs = await self.coordinator.create(request, OPERATOR)
        assert outputs[0].token is not None
        self.tokens[record.id, "out"] = outputs[0].token
        return record.id

    async def upload(self, cid: str, pid: str, columns: list[list[int]]) -> list[str]:
        """Register (if new), fetch the compute config, upload each column with the client."""
        if (cid, pid) not in self.tokens:
            registration = await self.coordinator.register_input(cid, pid, None)
            assert registration.token is not None
            self.tokens[cid, pid] = registration.token
        plan = await self.coordinator.compute_config(cid, self.tokens[cid, pid])
        client = CarbyneStackClient(ComputeConfig.parse(plan), self.http, TOKEN)
        return [await client.upload(column) for column in columns]

    async def confirm(
        self, cid: str, pid: str, secret_ids: list[str], rows: int
    ) -> CollaborationRecord:
        record, _ = await self.coordinator.confirm_upload(
            cid, pid, self.tokens[cid, pid], secret_ids=secret_ids, rows=rows
        )
        return record

    async def finish(self, cid: str) -> CollaborationRecord:
        await self.coordinator.idle()
        return await self.coordinator.results(cid, self.tokens[cid, "out"])

    async def read(self, secret_id: str) -> list[int]:
        """The output party reads a result secret with its own client (integrity-checked)."""
        return await CarbyneStackClient(self.cloud.config, self.http, TOKEN).read(secret_id)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    cloud = FakeCarbyneStack(3, token=TOKEN, game_timeout=0.3)
    engine = CarbyneStackCoordinationEngine(TOKEN, transport=cloud.transport(), timeout=5.0)
    notified: list[dict[str, Any]] = []

    def notify(request: httpx.Request) -> httpx.Response:
        import json

        notified.append(json.loads(request.content))
        return httpx.Response(204)

    database = Database(f"sqlite:///{tmp_path / 'coordination.db'}")
    await database.migrate()
    service = CoordinationService(
        CoordinationSettings.model_validate(FAST),
        database,
        operator_token=OPERATOR,
        programs=StaticProgramRegistry([*BUILTIN_PROGRAMS, HISTOGRAM_PROGRAM]),
        transport=httpx.MockTransport(notify),
    )
    service.use_engine(engine)
    await service.start()
    try:
        async with cloud.client() as http:
            yield World(cloud, engine, service.coordinator, http, notified)
    finally:
        await service.stop()
        await database.dispose()


def random_parties(rng: random.Random) -> dict[str, list[list[int]]]:
    """Per party: the columns (stays, cost in cents) of 1..40 random rows."""
    data = {}
    for pid in PARTIES:
        n = rng.randint(1, 40)
        data[pid] = [
            [rng.randint(0, 60) for _ in range(n)],
            [rng.randint(-50_000, 500_000) for _ in range(n)],
        ]
    return data


async def upload_all(world: World, cid: str, data: dict[str, list[list[int]]]) -> None:
    for pid, columns in data.items():
        ids = await world.upload(cid, pid, columns)
        await world.confirm(cid, pid, ids, len(columns[0]))


@pytest.mark.parametrize("seed", [1, 2])
async def test_sum_over_three_parties_equals_plaintext(world: World, seed: int) -> None:
    data = random_parties(random.Random(seed))
    cid = await world.create({"name": "sum", "version": "1"})
    await upload_all(world, cid, data)
    record = await world.finish(cid)
    assert record.state is CollabState.DONE, record.error
    assert record.result_ids is not None
    assert len(record.result_ids) == len(COLUMNS)
    for column, rid in enumerate(record.result_ids):
        expected = sum(x for columns in data.values() for x in columns[column])
        assert await world.read(rid) == [expected]
    assert world.notified[-1]["state"] == "done"
    assert world.notified[-1]["secretIds"] == record.result_ids
    assert all(world.cloud.held_by(rid) == [True, True, True] for rid in record.result_ids)


async def test_mean_of_one_column_equals_plaintext(world: World) -> None:
    data = random_parties(random.Random(3))
    cid = await world.create({"name": "mean", "version": "1", "parameters": {"columns": ["cost"]}})
    await upload_all(world, cid, data)
    record = await world.finish(cid)
    assert record.state is CollabState.DONE, record.error
    assert record.result_ids is not None
    (rid,) = record.result_ids
    (mean,) = result_values("mean", await world.read(rid))
    costs = [x for columns in data.values() for x in columns[1]]
    assert abs(Fraction(mean) - Fraction(sum(costs), len(costs))) <= Fraction(1, 2**15)


async def test_histogram_equals_plaintext(world: World) -> None:
    data = random_parties(random.Random(4))
    edges = [0, 10, 20, 30, 45, 61]
    cid = await world.create(
        {"name": "histogram", "version": "1", "parameters": {"edges": edges, "columns": ["stays"]}}
    )
    await upload_all(world, cid, data)
    record = await world.finish(cid)
    assert record.state is CollabState.DONE, record.error
    assert record.result_ids is not None
    stays = [x for columns in data.values() for x in columns[0]]
    expected = [sum(1 for x in stays if lo <= x < hi) for lo, hi in pairwise(edges)]
    assert result_values("histogram", await world.read(record.result_ids[0])) == expected


async def test_a_mean_that_could_overflow_is_refused(world: World) -> None:
    mean = {"name": "mean", "version": "1", "parameters": {"columns": ["cost"]}}
    unbounded = {"columns": [{"name": "stays"}, {"name": "cost", "type": "fixed", "scale": 2}]}
    cid = await world.create(mean, input_specification=unbounded)
    data = random_parties(random.Random(12))
    ids = await world.upload(cid, "a", data["a"])
    with pytest.raises(PtxError, match="needs min and max"):
        await world.confirm(cid, "a", ids, len(data["a"][0]))

    wide = {"columns": [{"name": "stays"}, {"name": "cost", "min": 0, "max": 10**6}]}
    cid = await world.create(mean, input_specification=wide)
    rows = [[1] * 200, [10**6] * 200]  # 200 * 10**6 >= 2**27
    ids = await world.upload(cid, "a", rows)
    with pytest.raises(PtxError, match="fixed-point range"):
        await world.confirm(cid, "a", ids, 200)


async def test_the_compute_config_is_the_upstream_shape(world: World) -> None:
    cid = await world.create({"name": "sum", "version": "1"})
    registration = await world.coordinator.register_input(cid, "a", None)
    plan = registration.plan
    assert set(plan) == {"prime", "r", "rinv", "noSslValidation", "providers"}
    assert plan["prime"] == str(world.cloud.field.prime)  # a string: past 2**53
    assert [p["amphoraServiceUrl"] for p in plan["providers"]] == [
        f"http://vcp{i}.carbyne.test/amphora" for i in (1, 2, 3)
    ]
    assert ComputeConfig.parse(plan) == world.cloud.config


async def test_a_corrupted_mask_is_refused_and_nothing_is_uploaded(world: World) -> None:
    data = random_parties(random.Random(5))
    cid = await world.create({"name": "sum", "version": "1"})
    world.cloud.corrupt(1, "u")
    posts = world.cloud.masked_input_posts
    with pytest.raises(IntegrityError, match="integrity check"):
        await world.upload(cid, "a", data["a"])
    assert world.cloud.masked_input_posts == posts
    assert all(not vcp.secrets for vcp in world.cloud.vcps)
    world.cloud.corrupt(None)
    await upload_all(world, cid, data)  # the same party uploads again once the VCP is healed
    record = await world.finish(cid)
    assert record.state is CollabState.DONE, record.error
    assert record.result_ids is not None
    expected = sum(x for columns in data.values() for x in columns[0])
    assert await world.read(record.result_ids[0]) == [expected]


async def test_a_corrupted_result_share_is_refused_by_the_output_party(world: World) -> None:
    data = random_parties(random.Random(6))
    cid = await world.create({"name": "sum", "version": "1"})
    await upload_all(world, cid, data)
    record = await world.finish(cid)
    assert record.result_ids is not None
    world.cloud.corrupt(2, "w")
    with pytest.raises(IntegrityError):
        await world.read(record.result_ids[0])


@pytest.mark.parametrize("fault", ["down", "ephemeral 500"])
async def test_a_vcp_down_fails_the_run_with_its_reason(world: World, fault: str) -> None:
    data = random_parties(random.Random(7))
    cid = await world.create({"name": "sum", "version": "1"}, approval="explicit")
    await upload_all(world, cid, data)
    record = await world.coordinator.require(cid)
    assert record.state is CollabState.READY
    if fault == "down":
        world.cloud.set_unreachable(1)  # VCP 2 goes down before the run starts
    else:
        world.cloud.set_failing(1, only="POST")  # VCP 2's Ephemeral fails the activation
    for pid in PARTIES:
        await world.coordinator.approve(
            cid, pid, record.definition.program.sha256, world.tokens[cid, pid]
        )
    record = await world.finish(cid)
    assert record.state is CollabState.FAILED
    assert record.error is not None
    assert "VCP 2" in record.error
    assert ("unreachable" if fault == "down" else "POST /ephemeral answered 500") in record.error
    assert record.result_ids is None
    assert world.notified[-1]["state"] == "failed"
    assert "VCP 2" in world.notified[-1]["message"]


async def test_confirmations_the_vcps_do_not_back_are_refused(world: World) -> None:
    data = random_parties(random.Random(8))
    cid = await world.create({"name": "sum", "version": "1"})
    ids = await world.upload(cid, "a", data["a"])
    rows = len(data["a"][0])

    async def refused(secret_ids: list[str], rows: int) -> list[tuple[str, str]]:
        with pytest.raises(PtxError) as caught:
            await world.confirm(cid, "a", secret_ids, rows)
        assert caught.value.status == 422
        return [(p.field, p.problem) for p in caught.value.problems]

    assert await refused(ids[:1], rows) == [
        ("secret_ids", "expected one secret per input column (2), in column order")
    ]
    assert await refused(ids, rows + 1) == [
        ("secret_ids.0", f"holds {rows} values, not {rows + 1}"),
        ("secret_ids.1", f"holds {rows} values, not {rows + 1}"),
    ]
    del world.cloud.vcps[2].secrets[ids[1]]  # VCP 3 lost one secret
    assert await refused(ids, rows) == [("secret_ids.1", "is not held by VCP 3")]
    assert (await world.coordinator.require(cid)).state is CollabState.OPEN

    other = await world.create({"name": "sum", "version": "1"})
    fresh = await world.upload(other, "a", data["a"])
    await world.confirm(other, "a", fresh, rows)
    assert await refused(fresh, rows) == [
        ("secret_ids.0", "secret belongs to another run"),
        ("secret_ids.1", "secret belongs to another run"),
    ]


async def test_programs_the_engine_cannot_run_are_refused(world: World) -> None:
    cid = await world.create({"name": "count", "version": "1"})
    data = random_parties(random.Random(9))
    ids = await world.upload(cid, "a", data["a"])
    with pytest.raises(PtxError, match="not available on engine carbynestack"):
        await world.confirm(cid, "a", ids, len(data["a"][0]))


async def test_an_invalid_compute_config_is_refused_at_creation(world: World) -> None:
    config = world.cloud.config.as_json()
    config["providers"] = config["providers"][:1]
    with pytest.raises(PtxError) as caught:
        await world.create({"name": "sum", "version": "1"}, compute_config=config)
    assert caught.value.status == 422
    assert [p.field for p in caught.value.problems] == ["compute_config.providers"]


async def test_delete_removes_inputs_and_results_at_every_vcp(world: World) -> None:
    data = random_parties(random.Random(10))
    cid = await world.create({"name": "sum", "version": "1"})
    await upload_all(world, cid, data)
    record = await world.finish(cid)
    assert record.result_ids is not None
    assert any(vcp.secrets for vcp in world.cloud.vcps)
    await world.coordinator.delete(cid, OPERATOR)
    assert all(not vcp.secrets for vcp in world.cloud.vcps)


async def test_run_is_idempotent_per_run_id(world: World) -> None:
    data = random_parties(random.Random(11))
    cid = await world.create({"name": "sum", "version": "1"})
    await upload_all(world, cid, data)
    record = await world.finish(cid)
    assert record.run_id is not None
    games = [r for r in world.cloud.requests if r[2] == "/ephemeral"]
    inputs = [await _party_input(world, cid, pid) for pid in PARTIES]
    await world.engine.run(record.run_id, record.definition, inputs)
    assert [r for r in world.cloud.requests if r[2] == "/ephemeral"] == games
    assert await world.engine.fetch_result(record.run_id) == record.result_ids


async def _party_input(world: World, cid: str, pid: str) -> Any:
    from ptx_chain_node.coordination.engine import PartyInput
    from ptx_chain_node.coordination.records import Role

    party = await world.coordinator.store.party(cid, Role.INPUT, pid)
    assert party is not None
    return PartyInput(pid, party.secret_ids or [], party.rows)


def test_the_engine_is_registered_and_takes_its_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory = ENGINE_FACTORIES[ENGINE_NAME]
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ValueError, match=TOKEN_ENV):
        factory()
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    engine = factory()
    assert isinstance(engine, CarbyneStackCoordinationEngine)
    assert engine.name == ENGINE_NAME
