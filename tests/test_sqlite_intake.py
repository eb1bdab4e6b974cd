"""The SQLite writer-thread intake: committed before submit returns, batched, deduplicated."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.intake import JobIntake, intake_for
from ptx_chain_node.job import job_id_for
from ptx_chain_node.payload import ChainPayload
from ptx_chain_node.store import Database, JobStore, NewJob
from ptx_chain_node.store.sqlite_intake import SqliteJobIntake, sqlite_file


def new_job(chain: str, value: int) -> NewJob:
    context = ChainContext(chain_id=chain, target_id="https://so/mpc", next_target="https://so/n")
    return NewJob(
        id=job_id_for(context.chain_id, context.target_id),
        resource="default",
        mode="async",
        context=context,
        payload=ChainPayload(data=[{"v": value}]),
        not_before=time.time(),
    )


@pytest.fixture
async def migrated(tmp_path: Path) -> AsyncIterator[tuple[Database, JobStore, str]]:
    database = Database(f"sqlite:///{tmp_path / 'intake.db'}")
    await database.migrate()
    path = sqlite_file(database)
    assert path == str(tmp_path / "intake.db")
    yield database, JobStore(database), path
    await database.dispose()


def stored(path: str) -> dict[str, tuple[str, float]]:
    """What another connection sees: job id -> (payload, created_at)."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, payload, created_at FROM jobs").fetchall()
    conn.close()
    return {row[0]: (row[1], row[2]) for row in rows}


async def test_every_submit_is_committed_when_it_returns(
    migrated: tuple[Database, JobStore, str],
) -> None:
    database, store, path = migrated
    intake = intake_for(database, store)
    assert isinstance(intake, SqliteJobIntake)
    intake.start()
    rng = random.Random()
    values = {f"@s:{n}-{rng.getrandbits(40):x}": rng.randrange(10**9) for n in range(400)}
    chains = list(values)
    # Repeats of some chain steps, in random order, all at once.
    deliveries = chains + rng.sample(chains, 100)
    rng.shuffle(deliveries)
    seen_committed: list[bool] = []

    async def deliver(chain: str) -> None:
        job = new_job(chain, values[chain])
        await intake.submit(job)
        seen_committed.append(job.id in stored(path))

    try:
        await asyncio.gather(*(deliver(chain) for chain in deliveries))
    finally:
        await intake.stop()
    assert seen_committed == [True] * len(deliveries)
    rows = stored(path)
    assert len(rows) == len(chains)  # a repeated chain step is one job
    for chain, value in values.items():
        payload, _ = rows[job_id_for(chain, "https://so/mpc")]
        assert ChainPayload.model_validate_json(payload).data == [{"v": value}]
    # Requests that arrived together shared commits (one created_at per batch).
    assert len({created for _, created in rows.values()}) < len(chains) / 4


async def test_a_repeated_delivery_keeps_the_first_job(
    migrated: tuple[Database, JobStore, str],
) -> None:
    _, store, path = migrated
    intake = SqliteJobIntake(store, path)
    intake.start()
    try:
        await intake.submit(new_job("@s:1", 1))
        first = stored(path)
        await intake.submit(new_job("@s:1", 2))
    finally:
        await intake.stop()
    assert stored(path) == first


async def test_a_failed_commit_reaches_every_waiter_and_creates_no_table(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'bare.db'}")  # not migrated
    intake = SqliteJobIntake(JobStore(database), str(tmp_path / "bare.db"))
    intake.start()
    try:
        results = await asyncio.gather(
            *(intake.submit(new_job(f"@s:{n}", n)) for n in range(20)), return_exceptions=True
        )
    finally:
        await intake.stop()
        await database.dispose()
    assert all(isinstance(r, sqlite3.OperationalError) for r in results)
    with sqlite3.connect(tmp_path / "bare.db") as conn:
        tables = conn.execute("SELECT name FROM sqlite_master").fetchall()
    conn.close()
    assert tables == []  # the schema belongs to the migrations


async def test_stop_commits_what_was_submitted_and_refuses_more(
    migrated: tuple[Database, JobStore, str],
) -> None:
    _, store, path = migrated
    intake = SqliteJobIntake(store, path)
    intake.start()
    waiting = [asyncio.ensure_future(intake.submit(new_job(f"@s:{n}", n))) for n in range(50)]
    await asyncio.sleep(0)  # every submit is queued
    await intake.stop()
    await asyncio.gather(*waiting)
    assert len(stored(path)) == 50
    with pytest.raises(RuntimeError, match="not running"):
        await intake.submit(new_job("@s:late", 0))


async def test_other_stores_keep_the_async_intake(tmp_path: Path) -> None:
    memory = Database("sqlite:///:memory:")
    postgres = Database("postgresql://u@127.0.0.1:9/x")
    try:
        assert sqlite_file(memory) is None and sqlite_file(postgres) is None
        assert isinstance(intake_for(memory, JobStore(memory)), JobIntake)
        assert isinstance(intake_for(postgres, JobStore(postgres)), JobIntake)
    finally:
        await memory.dispose()
        await postgres.dispose()
