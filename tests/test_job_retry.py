"""Holding and retrying jobs: the pure transition, the store (SQLite and PostgreSQL), the CLI."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node.chain import ChainContext
from ptx_chain_node.chains.config import load_chain_file
from ptx_chain_node.chains.processor import collaboration_id
from ptx_chain_node.job import (
    InvalidTransition,
    Job,
    JobResult,
    JobState,
    NotRetryable,
    job_id_for,
    retry_target,
)
from ptx_chain_node.payload import ChainPayload
from ptx_chain_node.processor import ProcessingError, Progress
from ptx_chain_node.store import Database, JobStore, NewJob

REPO = Path(__file__).resolve().parents[1]
CHAIN = "@supervisor:" + "2b" * 64 + "-1744205196870-1bcec18e"
TARGET = "https://catalog.test/v1/catalog/serviceofferings/mpc"


# -- the pure transition ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "payload", "result", "target"),
    [
        (JobState.HELD, True, False, JobState.RECEIVED),
        (JobState.HELD, False, False, JobState.COMPUTING),
        (JobState.HELD, False, True, JobState.RESULT_READY),
        (JobState.FAILED, False, True, JobState.RESULT_READY),
        (JobState.FAILED, True, False, JobState.RECEIVED),
    ],
)
def test_retry_target(state: JobState, payload: bool, result: bool, target: JobState) -> None:
    assert retry_target(state, has_payload=payload, has_result=result) == target


@pytest.mark.parametrize(
    "state", [JobState.RESUMED, JobState.COMPLETED, JobState.RECEIVED, JobState.RESUMING]
)
def test_only_held_or_failed_jobs_retry(state: JobState) -> None:
    with pytest.raises(NotRetryable, match=state.value):
        retry_target(state, has_payload=True, has_result=True)


def test_failed_job_without_payload_or_result_cannot_retry() -> None:
    with pytest.raises(InvalidTransition, match="neither its payload nor a result"):
        retry_target(JobState.FAILED, has_payload=False, has_result=False)


def test_retry_number_gives_fresh_collaboration_ids() -> None:
    config = load_chain_file(REPO / "examples" / "chains" / "salaries.toml").chains[0]
    computation = config.computations[0]
    first = collaboration_id(config, CHAIN, computation)
    assert collaboration_id(config, CHAIN, computation, 0) == first  # stable for old jobs
    ids = {collaboration_id(config, CHAIN, computation, n) for n in range(4)}
    assert len(ids) == 4


# -- the store -------------------------------------------------------------------------------


def new_job(n: int) -> NewJob:
    context = ChainContext(
        chain_id=f"@supervisor:{n:04x}-1-abc", target_id=TARGET, next_target="https://so/next"
    )
    return NewJob(
        id=job_id_for(context.chain_id, context.target_id),
        resource="default",
        mode="async",
        context=context,
        payload=ChainPayload(data=[{"v": n}]),
        not_before=time.time(),
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[JobStore]:
    database = Database(store_url)
    await database.migrate()
    yield JobStore(database)
    await database.dispose()


async def _claimed(store: JobStore, n: int) -> Job:
    await store.insert_many([new_job(n)])
    job = await store.claim("w", 60)
    assert job is not None and job.id == new_job(n).id
    return job


async def test_held_before_shared_keeps_payload_and_retries_from_received(
    store: JobStore,
) -> None:
    job = await _claimed(store, 1)
    await store.set_state(job.id, "w", JobState.COMPUTING)
    assert await store.finish(job.id, "w", JobState.HELD, error="mpc: nodes down")
    held = await store.get(job.id, with_data=True)
    assert held is not None and held.state == JobState.HELD
    assert held.payload is not None and held.payload.data == [{"v": 1}]
    assert held.last_error == "mpc: nodes down" and held.finished_at is not None

    retried = await store.retry(job.id)
    assert retried is not None and retried.state == JobState.RECEIVED
    assert retried.retries == 1 and retried.last_error is None and retried.finished_at is None
    again = await store.claim("w2", 60)  # claimable at once, lease free
    assert again is not None and again.id == job.id and again.retries == 1
    assert await store.set_state(job.id, "w2", JobState.SHARED, drop_payload=True)
    assert (await store.get(job.id, with_data=True)).payload is None  # type: ignore[union-attr]


async def test_held_after_shared_waits_again_without_counting_a_retry(store: JobStore) -> None:
    job = await _claimed(store, 2)
    await store.set_state(job.id, "w", JobState.SHARED, drop_payload=True)
    await store.finish(job.id, "w", JobState.HELD, error="no result within 10 s")
    retried = await store.retry(job.id)
    assert retried is not None and retried.state == JobState.COMPUTING and retried.retries == 0
    claimed = await store.claim("w2", 60)
    assert claimed is not None and claimed.state == JobState.COMPUTING


async def test_failed_resume_retries_from_result_ready_with_a_new_deadline(
    store: JobStore,
) -> None:
    job = await _claimed(store, 3)
    await store.set_result(
        job.id, "w", JobResult(data=1), JobState.RESULT_READY, keep_payload=False
    )
    again = await store.claim("w", 60)
    assert again is not None
    await store.start_resume(job.id, "w")
    await store.finish(job.id, "w", JobState.FAILED, error="resume: 503")
    failed = await store.get(job.id, with_data=True)
    assert failed is not None and failed.payload is None and failed.resume_started_at
    retried = await store.retry(job.id)
    assert retried is not None and retried.state == JobState.RESULT_READY
    assert retried.resume_started_at is None and retried.retries == 0
    assert retried.attempts == 1  # resume attempts stay counted
    stored = await store.get(job.id, with_data=True)
    assert stored is not None and stored.result == JobResult(data=1)


async def test_retry_refusals(store: JobStore) -> None:
    assert await store.retry("no-such-job") is None
    job = await _claimed(store, 4)
    with pytest.raises(NotRetryable):  # still being processed
        await store.retry(job.id)
    await store.finish(job.id, "w", JobState.FAILED, error="bad data")
    with pytest.raises(NotRetryable, match="neither"):  # failed: the payload is gone
        await store.retry(job.id)
    assert (await store.get(job.id)).state == JobState.FAILED  # type: ignore[union-attr]
    done = await _claimed(store, 5)
    await store.finish(done.id, "w", JobState.RESUMED)
    with pytest.raises(NotRetryable, match="resumed"):
        await store.retry(done.id)


# -- the CLI against a running gateway's SQLite file -----------------------------------------


class HoldOnce:
    """Holds its first job (before anything is shared), then doubles like DoublingProcessor."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def process(self, job: Job, progress: Progress) -> JobResult:
        assert job.payload is not None
        self.calls.append(job.payload.data)
        await progress(JobState.COMPUTING)
        if len(self.calls) == 1:
            raise ProcessingError("nodes unreachable", hold=True)
        return JobResult(data={"total": 2 * sum(r["salary"] for r in job.payload.data)})


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "jobs",
        *args,
        "--config",
        str(config),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_retry_of_a_held_job_then_processed_and_resumed(tmp_path: Path) -> None:
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"store_url": f"sqlite:///{tmp_path / 'gw.db'}"}))
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'gw.db'}",
        pdc_url="http://pdc.test:3000",
        resume={"delay": 0.05, "backoff_initial": 0.01, "backoff_max": 0.05},
        worker={"poll_interval": 0.05},
        resources=[{"processor": "hold"}],
        log_json=False,
    )
    resumes: list[dict[str, Any]] = []

    def pdc(request: httpx.Request) -> httpx.Response:
        resumes.append(json.loads(request.content))
        return httpx.Response(200, json={"message": "Node resumed successfully"})

    processor = HoldOnce()
    app = create_app(
        settings,
        processors={"hold": processor},
        transport=httpx.MockTransport(pdc),
        configure_logging=False,
    )
    headers = {
        "x-ptx-service-chain-id": CHAIN,
        "x-ptx-target-id": TARGET,
        "x-ptx-service-chain-next-target": "https://catalog.test/next",
        "content-type": "application/json",
    }
    rows = [{"salary": 50000}, {"salary": 61000}]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):

        async def wait(job_id: str, state: str) -> dict[str, Any]:
            for _ in range(200):
                job = (await client.get(f"/jobs/{job_id}")).json()
                if job.get("state") == state:
                    return dict(job)
                await asyncio.sleep(0.025)
            raise AssertionError(f"{job_id} never reached {state}")

        ack = (await client.post("/resource", json={"data": rows}, headers=headers)).json()
        job_id = ack["jobId"]
        held = await wait(job_id, "held")
        assert held["lastError"] == "nodes unreachable"

        code, out, _ = await cli(config, "list", "--state", "held")
        assert code == 0 and job_id in out and "nodes unreachable" in out
        code, out, _ = await cli(config, "show", job_id)
        shown = json.loads(out)
        assert code == 0 and shown["state"] == "held" and shown["hasPayload"] is True
        assert "salary" not in out  # never the data

        code, out, err = await cli(config, "retry", job_id)
        assert code == 0, err
        assert f"job {job_id}: held -> received (retries=1)" in out
        done = await wait(job_id, "resumed")
        assert done["retries"] == 1 and done["lastError"] is None
        assert processor.calls == [rows, rows]  # the held plaintext was there to retry
        assert resumes == [{"chainId": CHAIN, "targetId": TARGET, "data": {"total": 222000}}]

        code, _, err = await cli(config, "retry", job_id)
        assert code == 1 and "cannot be retried" in err and "resumed" in err
    code, _, err = await cli(config, "retry", "no-such-job")
    assert code == 1 and "no job no-such-job" in err
    code, _, err = await cli(config, "show", "no-such-job")
    assert code == 1 and "no job" in err
