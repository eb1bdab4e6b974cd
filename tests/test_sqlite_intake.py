"""The SQLite intake and its writer process: committed before submit returns, batched,
deduplicated, and a new writer after one dies."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.intake import JobIntake, intake_for
from ptx_chain_node.job import job_id_for
from ptx_chain_node.payload import ChainPayload
from ptx_chain_node.store import Database, JobStore, NewJob, sqlite_writer
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
    await intake.start()
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
    await intake.start()
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
    await intake.start()
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
    await intake.start()
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


def test_the_writer_commits_every_frame_it_has_in_one_transaction(
    tmp_path: Path, migrated: tuple[Database, JobStore, str]
) -> None:
    _, store, path = migrated
    jobs = [new_job(f"@s:{n}", n) for n in range(6)]
    stream = bytearray(sqlite_writer.frame(store.insert_sql))
    stream += sqlite_writer.frame((7, store.insert_rows(jobs[:4])))
    stream += sqlite_writer.frame((8, store.insert_rows(jobs[2:])))  # overlaps the first
    stream += sqlite_writer.frame((9, []))[:-1]  # incomplete: stays in the buffer
    messages = sqlite_writer.split_frames(stream)
    assert messages[0] == store.insert_sql and [m[0] for m in messages[1:]] == [7, 8]
    assert len(stream) == len(sqlite_writer.frame((9, []))) - 1
    conn = sqlite_writer.open_connection(path)
    try:
        assert sqlite_writer.commit(conn, store.insert_sql, messages[1:]) == ([7, 8], None)
        assert set(stored(path)) == {job.id for job in jobs}
        broken = [(10, store.insert_rows([new_job("@s:new", 1)])), (11, [("too", "few")])]
        ids, error = sqlite_writer.commit(conn, store.insert_sql, broken)
    finally:
        conn.close()
    assert ids == [10, 11] and error is not None and error[0] == "ProgrammingError"
    assert len(stored(path)) == 6  # the failed transaction left nothing behind


async def test_the_writer_is_out_of_reach_of_group_signals_and_ends_with_its_input(
    migrated: tuple[Database, JobStore, str],
) -> None:
    _, store, path = migrated
    intake = SqliteJobIntake(store, path)
    await intake.start()
    try:
        pid = intake.writer_pid
        assert pid is not None
        # A Ctrl-C or a SIGTERM to the gateway's process group does not reach the writer.
        assert os.getpgid(pid) != os.getpgid(0)
        await intake.submit(new_job("@s:1", 1))
    finally:
        await intake.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # closing its input ended it (and it was reaped)


async def test_a_new_writer_replaces_one_that_died(
    migrated: tuple[Database, JobStore, str],
) -> None:
    _, store, path = migrated
    intake = SqliteJobIntake(store, path)
    await intake.start()
    try:
        await intake.submit(new_job("@s:before", 1))
        first = intake.writer_pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        outcomes = await asyncio.gather(
            *(intake.submit(new_job(f"@s:during-{n}", n)) for n in range(20)),
            return_exceptions=True,
        )
        # Batches the dead writer did not confirm fail (no ACK); none is reported stored
        # without being stored.
        confirmed = [n for n, outcome in enumerate(outcomes) if outcome is None]
        assert all(isinstance(o, RuntimeError) for o in outcomes if o is not None)
        assert {job_id_for(f"@s:during-{n}", "https://so/mpc") for n in confirmed} <= set(
            stored(path)
        )
        await intake.submit(new_job("@s:after", 2))
        assert intake.writer_pid not in (None, first)
    finally:
        await intake.stop()
    assert job_id_for("@s:after", "https://so/mpc") in stored(path)


async def test_a_payload_larger_than_a_pipe_read_arrives_whole(
    migrated: tuple[Database, JobStore, str],
) -> None:
    _, store, path = migrated
    rng = random.Random()
    rows = [{"v": rng.randrange(10**9), "name": f"row-{n}"} for n in range(100_000)]
    big = new_job("@s:big", 0)
    big = NewJob(**{**big.__dict__, "payload": ChainPayload(data=rows)})
    intake = SqliteJobIntake(store, path)
    await intake.start()
    try:
        await asyncio.gather(intake.submit(big), intake.submit(new_job("@s:small", 1)))
    finally:
        await intake.stop()
    payload, _ = stored(path)[big.id]
    assert len(payload) > 2 * sqlite_writer.CHUNK
    assert ChainPayload.model_validate_json(payload).data == rows
