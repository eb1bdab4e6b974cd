"""A new app on the same SQLite file finds every collaboration as it was, and goes on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from coordination_harness import OP, auth, running
from pytest_httpx import HTTPXMock

from ptx_chain_node.coordination import LocalTestEngine
from ptx_chain_node.coordination.states import CollabState

P = "/v1/collaborations"


@pytest.fixture
def notify_ok(httpx_mock: HTTPXMock) -> HTTPXMock:
    httpx_mock.add_response(
        method="PUT", url="http://notify.test/client/notify", is_reusable=True, is_optional=True
    )
    return httpx_mock


async def test_open_and_ready_survive_a_restart(sqlite_url: str, notify_ok: HTTPXMock) -> None:
    engine = LocalTestEngine()
    async with running(sqlite_url, engine) as h:
        created = await h.create(approval="explicit")
        cid, sha = created["id"], created["program"]["sha256"]
        out_token = created["output_parties"][0]["token"]
        other = (await h.create())["id"]
        for pid in "abc":
            await h.register(cid, pid)
            await h.upload(cid, pid, [[1, 2]])
        assert (await h.client.post(f"{P}/{other}/input-parties/a")).status_code == 201
        assert await h.state(cid) == "ready" and await h.state(other) == "open"
        tokens = dict(h.tokens)
        before = (await h.client.get(f"{P}/{cid}")).json()
    async with running(sqlite_url, engine) as h:
        h.tokens = tokens
        assert (await h.client.get(f"{P}/{cid}")).json() == before
        assert await h.state(other) == "open"
        status = (await h.client.get(f"{P}/{cid}/status")).json()
        assert status["confirmed_uploads"] == 3 and status["approved_uploads"] == 0
        # Tokens issued before the restart still work; the run starts after approvals.
        for pid in "abc":
            assert (await h.approve(cid, pid, sha)).status_code == 200
        await h.coordinator.idle()
        assert await h.state(cid) == "done"
        r = await h.client.get(f"{P}/{cid}/results", headers=auth(out_token))
        assert [engine.open(i)[0] for i in r.json()["result_ids"]] == [3, 6]


async def test_running_resumes_after_a_graceful_stop(sqlite_url: str, notify_ok: HTTPXMock) -> None:
    engine = LocalTestEngine(delay=0.5)
    async with running(sqlite_url, engine) as h:
        cid = (await h.create())["id"]
        for pid in "abc":
            await h.register(cid, pid)
            await h.upload(cid, pid, [[pid == "a", 1]])
        assert await h.state(cid) == "running"
        tokens = dict(h.tokens)
    async with running(sqlite_url, engine) as h:
        await h.coordinator.idle()
        assert await h.state(cid) == "done"
        assert engine.runs_started == 1  # the same run, watched again
        r = await h.client.get(f"{P}/{cid}/results", headers=auth(tokens["out:out"]))
        assert [engine.open(i)[0] for i in r.json()["result_ids"]] == [1, 3]


async def test_a_run_left_by_a_crash_is_restarted_or_failed(
    sqlite_url: str, notify_ok: HTTPXMock
) -> None:
    engine = LocalTestEngine()
    async with running(sqlite_url, engine, max_run_attempts=2) as h:
        cid = (await h.create())["id"]
        stuck = (await h.create())["id"]
        unapproved = (await h.create())["id"]
        for collab in (cid, stuck, unapproved):
            for pid in "abc":
                await h.register(collab, pid)
        # What a crash right after "ready -> running" leaves: a run the engine never saw,
        # leased to a process that no longer exists.
        for collab in (cid, stuck, unapproved):
            record = await h.coordinator.require(collab)
            approve = None if collab == unapproved else record.definition.program.sha256
            for pid in "abc":
                ids = [engine.share([2]), engine.share([3])]
                await h.coordinator.store.confirm_upload(collab, pid, ids, 1, approve=approve)
            await h.coordinator.store.transition(collab, [CollabState.OPEN], CollabState.READY)
            assert await h.coordinator.store.start_run(collab, f"run-{collab}", "dead-owner", 3600)
        # The second one already used its attempts.
        await h.coordinator.store.restart_run(stuck, f"run-{stuck}", f"run2-{stuck}", "dead-owner")
    async with running(sqlite_url, engine, max_run_attempts=2) as h:
        await h.coordinator.idle()
        restarted = await h.coordinator.require(cid)
        assert restarted.state is CollabState.DONE and restarted.run_attempts == 2
        ids = restarted.result_ids or []
        assert [engine.open(i)[0] for i in ids] == [3 * 2, 3 * 3]
        # Without approvals the restarted run would have no inputs: it is refused, not run.
        refused = await h.coordinator.require(unapproved)
        assert refused.state is CollabState.FAILED
        assert refused.error == "only 0 approved inputs; the collaboration needs 3"
        failed = await h.coordinator.require(stuck)
        assert failed.state is CollabState.FAILED and failed.error == "run lost"
        [notification] = await h.coordinator.outbox.for_collaboration(stuck)
        assert b'"run lost"' in notification.body.encode()


async def test_terminal_states_survive_a_restart(sqlite_url: str, notify_ok: HTTPXMock) -> None:
    engine = LocalTestEngine()
    async with running(sqlite_url, engine) as h:
        created = await h.create()
        done, token = created["id"], created["output_parties"][0]["token"]
        for pid in "abc":
            await h.register(done, pid)
            await h.upload(done, pid, [[1, 1]])
        await h.coordinator.idle()
        engine.fail_with = "engine down"
        failed = (await h.create())["id"]
        for pid in "abc":
            await h.register(failed, pid)
            await h.upload(failed, pid, [[1, 1]])
        await h.coordinator.idle()
        soon = (datetime.now(UTC) + timedelta(seconds=0.3)).isoformat()
        expired = (await h.create(deadline=soon))["id"]
        await asyncio.sleep(0.5)  # the sweep (every 0.05 s) expires it
        await h.coordinator.idle()
        states = {c: await h.state(c) for c in (done, failed, expired)}
        assert states == {done: "done", failed: "failed", expired: "expired"}
        views = {c: (await h.client.get(f"{P}/{c}")).json() for c in states}
    async with running(sqlite_url, LocalTestEngine()) as h:
        for c, state in states.items():
            assert (await h.client.get(f"{P}/{c}")).json() == views[c]
            assert await h.state(c) == state
        r = await h.client.get(f"{P}/{done}/results", headers=auth(token))
        assert r.status_code == 200 and len(r.json()["result_ids"]) == 2
        deliveries = (await h.client.get(f"{P}/{failed}/notifications", headers=OP)).json()
        assert deliveries["notifications"][0]["state"] == "delivered"


async def test_an_expired_deadline_is_applied_at_start_up(
    sqlite_url: str, notify_ok: HTTPXMock
) -> None:
    async with running(sqlite_url) as h:
        soon = (datetime.now(UTC) + timedelta(seconds=0.2)).isoformat()
        cid = (await h.create(deadline=soon))["id"]
    await asyncio.sleep(0.3)  # the deadline passes while nothing runs
    async with running(sqlite_url) as h:
        await asyncio.sleep(0.2)
        await h.coordinator.idle()
        assert await h.state(cid) == "expired"
