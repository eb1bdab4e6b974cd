"""The store and the use cases on it, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from coordination_harness import OPERATOR, request_model, service
from pytest_httpx import HTTPXMock

from ptx_chain_node.coordination import CollabState, Role
from ptx_chain_node.errors import PtxError


def in_an_hour() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


async def test_create_get_list_delete(store_url: str) -> None:
    async with service(store_url) as (svc, _):
        c = svc.coordinator
        record, outputs = await c.create(request_model(), OPERATOR)
        assert record.state is CollabState.OPEN
        assert outputs[0].token and outputs[0].notify_secret
        stored = await c.store.get(record.id)
        assert stored is not None and stored.definition == record.definition
        assert [r.id for r in await c.collaborations()] == [record.id]
        assert await c.collaborations(state=CollabState.DONE) == []
        party = await c.store.party(record.id, Role.OUTPUT, "out")
        assert party is not None and party.token_sha256 != outputs[0].token
        await c.delete(record.id, OPERATOR)
        assert await c.store.get(record.id) is None
        assert await c.store.parties(record.id) == []


async def test_party_tokens_are_stored_hashed(store_url: str) -> None:
    async with service(store_url) as (svc, _):
        c = svc.coordinator
        record, _ = await c.create(request_model(), OPERATOR)
        registration = await c.register_input(record.id, "a", None)
        assert registration.token is not None
        stored = await c.store.party(record.id, Role.INPUT, "a")
        assert stored is not None
        assert registration.token not in repr(stored)
        assert stored.token_sha256 != registration.token
        again = await c.register_input(record.id, "a", None)
        assert not again.created and again.token is None


async def test_capacity_holds_under_concurrent_registrations(store_url: str) -> None:
    async with service(store_url) as (svc, _):
        c = svc.coordinator
        body = request_model(input_parties=[], number_of_parties=3)
        record, _ = await c.create(body, OPERATOR)
        results = await asyncio.gather(
            *(c.register_input(record.id, f"p{i}", None) for i in range(12)),
            return_exceptions=True,
        )
        created = [r for r in results if not isinstance(r, BaseException) and r.created]
        refused = [r for r in results if isinstance(r, PtxError) and r.status == 409]
        assert len(created) == 3 and len(refused) == 9
        assert len(await c.store.parties(record.id, Role.INPUT)) == 3


@pytest.mark.parametrize("same_party", [False, True])
async def test_fifty_concurrent_confirmations_start_exactly_one_run(
    store_url: str, httpx_mock: HTTPXMock, same_party: bool
) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify", is_reusable=True)
    async with service(store_url) as (svc, engine):
        c = svc.coordinator
        n = 1 if same_party else 50
        body = request_model(
            input_parties=[],
            number_of_parties=n,
            input_specification={"columns": [{"name": "v"}]},
        )
        record, _ = await c.create(body, OPERATOR)
        tokens = {}
        for i in range(n):
            tokens[f"p{i}"] = (await c.register_input(record.id, f"p{i}", None)).token
        if same_party:
            secret = engine.share([7])
            calls = [
                c.confirm_upload(record.id, "p0", tokens["p0"], secret_ids=[secret], rows=1)
                for _ in range(50)
            ]
        else:
            calls = [
                c.confirm_upload(record.id, pid, token, secret_ids=[engine.share([i])], rows=1)
                for i, (pid, token) in enumerate(tokens.items())
            ]
        results = await asyncio.gather(*calls)
        assert sum(1 for _, new in results if new) == n
        await c.idle()
        final = await c.store.get(record.id)
        assert final is not None
        assert final.state is CollabState.DONE
        assert final.run_attempts == 1
        assert engine.runs_started == 1
        expected = 7 if same_party else sum(range(50))
        assert engine.open(final.result_ids[0]) == [expected]  # type: ignore[index]


async def test_conditional_start_has_one_winner(store_url: str) -> None:
    async with service(store_url) as (svc, _):
        c = svc.coordinator
        record, _ = await c.create(request_model(), OPERATOR)
        await c.store.transition(record.id, [CollabState.OPEN], CollabState.READY)
        wins = await asyncio.gather(
            *(c.store.start_run(record.id, f"run-{i}", "x", 30) for i in range(20))
        )
        assert wins.count(True) == 1
        assert not await c.store.transition(record.id, [CollabState.READY], CollabState.OPEN)


async def test_deadline_expires_and_notifies_failure(store_url: str, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify")
    async with service(store_url) as (svc, _):
        c = svc.coordinator
        record, _ = await c.create(request_model(deadline=in_an_hour()), OPERATOR)
        await c.sweep(now=time.time() + 10**6)
        await c.idle()
        final = await c.store.get(record.id)
        assert final is not None and final.state is CollabState.EXPIRED
        assert final.error is not None and "deadline" in final.error
        request = httpx_mock.get_requests()[0]
        assert b'"code":500' in request.content and b'"state":"expired"' in request.content
        [notification] = await c.outbox.for_collaboration(record.id)
        assert notification.state.value == "delivered"
        [attempt] = await c.outbox.attempts(notification.id)
        assert attempt.status_code == 200


async def test_deadline_runs_with_the_minimum_when_allowed(
    store_url: str, httpx_mock: HTTPXMock
) -> None:
    httpx_mock.add_response(method="PUT", url="http://notify.test/client/notify")
    async with service(store_url) as (svc, engine):
        c = svc.coordinator
        body = request_model(min_parties=2, allow_partial_run=True, deadline=in_an_hour())
        record, _ = await c.create(body, OPERATOR)
        for pid, rows in (("a", [[1, 10]]), ("b", [[2, 20]])):
            token = (await c.register_input(record.id, pid, None)).token
            ids = [engine.share([r[0] for r in rows]), engine.share([r[1] for r in rows])]
            await c.confirm_upload(record.id, pid, token, secret_ids=ids, rows=1)
        await c.register_input(record.id, "c", None)
        assert (await c.require(record.id)).state is CollabState.OPEN
        await c.sweep(now=time.time() + 10**6)
        await c.idle()
        final = await c.require(record.id)
        assert final.state is CollabState.DONE
        assert [engine.open(i)[0] for i in final.result_ids or []] == [3, 30]
