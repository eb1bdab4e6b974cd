"""The job store on SQLite and on PostgreSQL: one code path, same guarantees."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.job import JobResult, JobState, job_id_for
from ptx_chain_node.payload import ChainPayload
from ptx_chain_node.store import Database, JobStore, NewJob


def new_job(n: int, *, final: bool = False, not_before: float | None = None) -> NewJob:
    context = ChainContext(
        chain_id=f"@supervisor:{n:04x}-1-abc",
        target_id="https://so/mpc",
        next_target=None if final else "https://so/next",
    )
    return NewJob(
        id=job_id_for(context.chain_id, context.target_id),
        resource="default",
        mode="async",
        context=context,
        payload=ChainPayload(data=[{"v": n}]),
        not_before=time.time() if not_before is None else not_before,
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[JobStore]:
    database = Database(store_url)
    await database.migrate()
    await database.migrate()  # idempotent
    yield JobStore(database)
    await database.dispose()


async def test_insert_is_idempotent_per_chain_step(store: JobStore) -> None:
    jobs = [new_job(i) for i in range(10)]
    await store.insert_many(jobs + jobs[:3])
    assert (await store.counts()) == {"received": 10}
    claimed = await store.claim("w", 60)
    assert claimed is not None
    await store.insert_many(jobs[:5])  # a repeat leaves stored jobs untouched
    assert (await store.counts()) == {"received": 10}
    again = await store.get(claimed.id)
    assert again is not None and again.created_at == claimed.created_at
    stored = await store.get(jobs[0].id, with_data=True)
    assert stored is not None and stored.payload is not None
    assert stored.payload.data == [{"v": 0}]
    assert (await store.get(jobs[0].id)).payload is None  # type: ignore[union-attr]


async def test_claim_leases_each_job_to_one_owner(store: JobStore) -> None:
    jobs = [new_job(i) for i in range(30)]
    await store.insert_many(jobs)

    async def drain(owner: str) -> list[str]:
        got = []
        while (job := await store.claim(owner, 60)) is not None:
            got.append(job.id)
        return got

    results = await asyncio.gather(*(drain(f"w{i}") for i in range(4)))
    claimed = [jid for r in results for jid in r]
    assert sorted(claimed) == sorted(j.id for j in jobs)
    assert len(set(claimed)) == len(claimed)


async def test_expired_lease_is_claimable_again_and_guards_updates(store: JobStore) -> None:
    job = new_job(1)
    await store.insert_many([job])
    first = await store.claim("a", 0.2)
    assert first is not None and await store.claim("b", 10) is None
    await asyncio.sleep(0.3)
    second = await store.claim("b", 10)
    assert second is not None and second.id == job.id
    # the old owner lost its lease: its writes are refused
    assert not await store.set_result(
        job.id, "a", JobResult(data=1), JobState.RESULT_READY, keep_payload=False
    )
    assert await store.set_result(
        job.id, "b", JobResult(data=2), JobState.RESULT_READY, keep_payload=False
    )
    stored = await store.get(job.id, with_data=True)
    assert stored is not None and stored.result == JobResult(data=2)
    assert stored.payload is None  # plaintext dropped once the result exists


async def test_resume_waits_for_not_before(store: JobStore) -> None:
    job = new_job(2, not_before=time.time() + 0.5)
    await store.insert_many([job])
    claimed = await store.claim("w", 10)
    assert claimed is not None  # received jobs are processed at once
    await store.set_result(
        job.id, "w", JobResult(data=1), JobState.RESULT_READY, keep_payload=False
    )
    assert await store.claim("w", 10) is None  # ready, but not yet due
    due = await store.next_due()
    assert due is not None and due == pytest.approx(job.not_before)
    await asyncio.sleep(0.6)
    ready = await store.claim("w", 10)
    assert ready is not None and ready.state == JobState.RESULT_READY


async def test_resume_in_flight_then_resumed(store: JobStore) -> None:
    job = new_job(3)
    await store.insert_many([job])
    await store.claim("w", 10)
    await store.set_result(
        job.id, "w", JobResult(data=1), JobState.RESULT_READY, keep_payload=False
    )
    await store.claim("w", 10)
    assert await store.start_resume(job.id, "w")
    in_flight = await store.get(job.id)
    assert in_flight is not None and in_flight.state == JobState.RESUMING
    assert in_flight.attempts == 1 and in_flight.resume_started_at is not None
    assert await store.finish(job.id, "w", JobState.RESUMED)
    done = await store.get(job.id, with_data=True)
    assert done is not None and done.state == JobState.RESUMED and done.finished_at is not None
    assert done.result == JobResult(data=1)  # stays queryable
    assert await store.claim("w", 10) is None


async def test_list_filters_by_state(store: JobStore) -> None:
    await store.insert_many([new_job(i) for i in range(5)])
    claimed = await store.claim("w", 10)
    assert claimed is not None
    await store.finish(claimed.id, "w", JobState.FAILED, error="boom")
    failed = await store.list(state=JobState.FAILED)
    assert [j.id for j in failed] == [claimed.id]
    assert failed[0].last_error == "boom"
    assert len(await store.list(limit=3)) == 3


async def test_release_all_frees_dead_leases(store: JobStore) -> None:
    await store.insert_many([new_job(1), new_job(2)])
    assert await store.claim("dead", 3600) is not None
    assert await store.release_all() == 1
    assert await store.claim("alive", 10) is not None


async def test_claim_leaves_the_payload_in_the_store_and_text_payloads_are_stored_as_given(
    store: JobStore,
) -> None:
    from dataclasses import replace

    from ptx_chain_node.payload import dump_payload

    job = new_job(7)
    text = dump_payload(ChainPayload(data=[{"v": 7, "w": [1.5, None, "x"]}], params="p"))
    await store.insert_many([replace(job, payload=text)])
    claimed = await store.claim("w", 60)
    assert claimed is not None and claimed.id == job.id
    assert claimed.payload is None and claimed.result is None  # not read by a claim
    stored = await store.get(job.id, with_data=True)
    assert stored is not None and stored.payload is not None
    assert stored.payload.data == [{"v": 7, "w": [1.5, None, "x"]}]
    assert stored.payload.params == "p" and stored.payload.wrapped
