"""The gateway app through httpx.ASGITransport: ACK, validation, auth, modes, operations."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node.job import Job, JobResult, JobState
from ptx_chain_node.processor import ProcessingError, Progress

CHAIN = "@supervisor:" + "1a" * 64 + "-1744205196870-1bcec18e"
TARGET = "https://catalog.test/v1/catalog/serviceofferings/mpc"
NEXT = "https://catalog.test/v1/catalog/serviceofferings/consumer"
ROWS = [{"salary": 50000}, {"salary": 61000}, {"salary": 47000}]


def headers(chain: str = CHAIN, *, final: bool = False, **extra: str) -> dict[str, str]:
    h = {
        "x-ptx-service-chain-id": chain,
        "x-ptx-target-id": TARGET,
        "x-ptx-dataExchangeId": "ex1",
        "content-type": "application/json",
    }
    if not final:
        h["x-ptx-service-chain-next-target"] = NEXT
    h.update(extra)
    return h


@dataclass
class RecordingPDC:
    """A PDC stand-in on an httpx.MockTransport: records resumes, answers like the PDC."""

    resumes: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    status: int = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/service-chain/resume"
        self.resumes.append(json.loads(request.content))
        self.times.append(time.time())
        return httpx.Response(self.status, json={"message": "Node resumed successfully"})


class DoublingProcessor:
    """A test processor: doubles every number; fails on demand."""

    async def process(self, job: Job, progress: Progress) -> JobResult:
        assert job.payload is not None
        await progress(JobState.COMPUTING)
        if job.payload.params_object.get("fail"):
            raise ProcessingError("asked to fail")
        total = sum(row["salary"] for row in job.payload.data)
        return JobResult(data={"total": 2 * total}, params={"rows": len(job.payload.data)})


@dataclass
class Gateway:
    app: Starlette
    client: httpx.AsyncClient
    pdc: RecordingPDC

    async def wait_state(self, job_id: str, *states: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            response = await self.client.get(f"/jobs/{job_id}")
            if response.status_code == 200 and response.json()["state"] in states:
                return dict(response.json())
            await asyncio.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {states}")


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def make_gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    stack: list[Any] = []

    async def factory(**overrides: Any) -> Gateway:
        base: dict[str, Any] = {
            "store_url": f"sqlite:///{tmp_path / 'gw.db'}",
            "pdc_url": "http://pdc.test:3000",
            "resume": {"delay": 0.2, "backoff_initial": 0.01, "backoff_max": 0.05},
            "worker": {"poll_interval": 0.05},
            "resources": [{"processor": "double"}],
            "log_json": False,
        }
        base.update(overrides)
        pdc = RecordingPDC()
        app = create_app(
            Settings(**base),
            processors={"double": DoublingProcessor()},
            transport=httpx.MockTransport(pdc),
            configure_logging=False,
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
        stack.append((lifespan, client))
        return Gateway(app, client, pdc)

    yield factory
    for lifespan, client in reversed(stack):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def test_ack_then_exactly_one_resume_after_the_delay(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    body = {"data": ROWS, "contract": "https://contract.test/c/1", "params": ""}
    sent = time.time()
    response = await gw.client.post("/resource", json=body, headers=headers())
    assert response.status_code == 200
    ack = response.json()
    assert ack["status"] == "ACK" and ack["jobId"]
    job = await gw.wait_state(ack["jobId"], "resumed")
    assert job["attempts"] == 1 and job["chainId"] == CHAIN
    assert gw.pdc.resumes == [
        {"chainId": CHAIN, "targetId": TARGET, "data": {"total": 2 * 158000}, "params": {"rows": 3}}
    ]
    assert gw.pdc.times[0] - sent >= 0.2  # never before the ACK plus the delay


async def test_repeated_delivery_same_ack_one_job(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    body = {"data": ROWS}
    answers = await asyncio.gather(
        *(gw.client.post("/resource", json=body, headers=headers()) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["jobId"] for a in answers}) == 1
    await gw.wait_state(answers[0].json()["jobId"], "resumed")
    again = await gw.client.post("/resource", json=body, headers=headers())
    assert again.json() == answers[0].json()
    await asyncio.sleep(0.4)
    assert len(gw.pdc.resumes) == 1
    listed = (await gw.client.get("/jobs")).json()["jobs"]
    assert len(listed) == 1


async def test_text_plain_json_and_put_for_user_templates(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(
        resources=[{"processor": "double", "path": "/users/{userId}/resource"}]
    )
    response = await gw.client.put(
        "/users/u-42/resource",
        content=json.dumps({"data": ROWS}),
        headers=headers(**{"content-type": "text/plain"}),
    )
    assert response.status_code == 200
    await gw.wait_state(response.json()["jobId"], "resumed")


async def test_final_node_completes_without_resume(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    response = await gw.client.post("/resource", json={"data": ROWS}, headers=headers(final=True))
    job = await gw.wait_state(response.json()["jobId"], "completed")
    assert job["final"]
    result = await gw.client.get(f"/jobs/{job['id']}/result")
    assert result.json() == {"data": {"total": 316000}, "params": {"rows": 3}}
    await asyncio.sleep(0.3)
    assert gw.pdc.resumes == []


async def test_sync_mode_answers_with_the_result_and_never_resumes(
    make_gateway: GatewayFactory,
) -> None:
    gw: Gateway = await make_gateway(resources=[{"processor": "double", "mode": "sync"}])
    response = await gw.client.post("/resource", json={"data": ROWS}, headers=headers())
    assert response.status_code == 200
    assert response.json() == {"data": {"total": 316000}, "params": {"rows": 3}}
    await asyncio.sleep(0.4)
    assert gw.pdc.resumes == []


async def test_processing_failure_fails_the_job_with_reason(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    response = await gw.client.post(
        "/resource", json={"data": ROWS, "params": {"fail": True}}, headers=headers()
    )
    job = await gw.wait_state(response.json()["jobId"], "failed")
    assert job["lastError"] == "asked to fail"
    assert gw.pdc.resumes == []


async def test_result_over_the_resume_limit_fails_clearly(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(resume={"delay": 0.05, "max_body_bytes": 100})
    response = await gw.client.post("/resource", json={"data": ROWS}, headers=headers())
    job = await gw.wait_state(response.json()["jobId"], "failed", "resumed")
    assert job["state"] == "failed"
    assert "exceeds the resume limit of 100 bytes" in job["lastError"]
    assert gw.pdc.resumes == []


async def test_pdc_refusal_fails_the_job(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    gw.pdc.status = 400
    response = await gw.client.post("/resource", json={"data": ROWS}, headers=headers())
    job = await gw.wait_state(response.json()["jobId"], "failed")
    assert "400" in job["lastError"] and job["attempts"] == 1


BAD_REQUESTS = [
    (b"not json", headers(), 400, "body"),
    (b"", headers(), 400, "body"),
    (
        json.dumps({"data": ROWS}).encode(),
        {"content-type": "application/json"},
        400,
        "header.x-ptx-service-chain-id",
    ),
    (json.dumps({"data": ROWS, "contract": 5}).encode(), headers(), 422, "body.contract"),
    (
        json.dumps({"data": {"origin": [], "additionalData": 3}}).encode(),
        headers(),
        422,
        "body.data.additionalData",
    ),
    (
        json.dumps({"data": ROWS}).encode(),
        headers(**{"x-ptx-target-id": "https://catalog.test/other"}),
        404,
        "header.x-ptx-target-id",
    ),
]


@pytest.mark.parametrize(("raw", "hdrs", "status", "field_name"), BAD_REQUESTS)
async def test_bad_input_is_refused_and_nothing_stored(
    make_gateway: GatewayFactory, raw: bytes, hdrs: dict[str, str], status: int, field_name: str
) -> None:
    gw: Gateway = await make_gateway(resources=[{"processor": "double", "target_ids": [TARGET]}])
    response = await gw.client.post("/resource", content=raw, headers=hdrs)
    assert response.status_code == status
    body = response.json()
    assert body["code"] == status
    assert any(e["field"].startswith(field_name) for e in body["errors"])
    assert (await gw.client.get("/jobs")).json()["jobs"] == []


async def test_oversized_body_is_413(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(limits={"max_body_bytes": 1000})
    response = await gw.client.post(
        "/resource", json={"data": [{"x": "y" * 2000}]}, headers=headers()
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["field"] == "body"
    assert (await gw.client.get("/jobs")).json()["jobs"] == []


async def test_api_key_auth(make_gateway: GatewayFactory) -> None:
    auth = {"api_key_header": "X-Api-Key", "api_key": "k-123"}
    gw: Gateway = await make_gateway(resources=[{"processor": "double", "auth": auth}])
    ok = await gw.client.post(
        "/resource", json={"data": ROWS}, headers=headers(**{"x-api-key": "k-123"})
    )
    assert ok.status_code == 200
    for bad in ({}, {"x-api-key": "k-124"}):
        refused = await gw.client.post(
            "/resource", json={"data": ROWS}, headers=headers(CHAIN + "2", **bad)
        )
        assert refused.status_code == 401
        assert refused.json()["errors"][0]["field"] == "credentials"
    assert len((await gw.client.get("/jobs")).json()["jobs"]) == 1


async def test_basic_auth_in_body_is_checked_and_stripped(make_gateway: GatewayFactory) -> None:
    auth = {"username": "pdc", "password": "pw-1"}
    gw: Gateway = await make_gateway(resources=[{"processor": "double", "auth": auth}])
    good = {"data": ROWS, "username": "pdc", "password": "pw-1"}
    ok = await gw.client.post("/resource", json=good, headers=headers())
    assert ok.status_code == 200
    wrong = {"data": ROWS, "username": "pdc", "password": "nope"}
    refused = await gw.client.post("/resource", json=wrong, headers=headers(CHAIN + "x"))
    assert refused.status_code == 401
    runtime = gw.app.state.runtime
    stored = await runtime.store.get(ok.json()["jobId"], with_data=True)
    raw_text = stored.model_dump_json() if stored else ""
    assert "pw-1" not in raw_text


async def test_operations_routes(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway(admin_token="adm-1")
    assert (await gw.client.get("/livez")).status_code == 200
    assert (await gw.client.get("/readyz")).json() == {"status": "ready"}
    assert (await gw.client.get("/health")).json()["store"] == "ok"
    assert (await gw.client.get("/jobs")).status_code == 401
    assert (await gw.client.get("/jobs", headers={"authorization": "Bearer no"})).status_code == 401
    gw.client.headers["authorization"] = "Bearer adm-1"
    response = await gw.client.post("/resource", json={"data": ROWS}, headers=headers())
    job_id = response.json()["jobId"]
    job = await gw.wait_state(job_id, "resumed")
    assert set(job) >= {"state", "attempts", "createdAt", "updatedAt", "lastError"}
    assert "data" not in job and "50000" not in json.dumps(job)
    assert (await gw.client.get("/jobs/nope")).status_code == 404
    assert (await gw.client.get("/jobs", params={"state": "bogus"})).status_code == 422
    assert (await gw.client.get("/jobs", params={"limit": "0"})).status_code == 422
    resumed = (await gw.client.get("/jobs", params={"state": "resumed"})).json()["jobs"]
    assert [j["id"] for j in resumed] == [job_id]
    metrics = (await gw.client.get("/metrics")).text
    assert 'ptx_jobs{state="resumed"} 1.0' in metrics
    assert "ptx_resume_attempts_total 1.0" in metrics
    assert "ptx_deliveries_total 1.0" in metrics
    assert "ptx_ack_latency_seconds_count 1.0" in metrics
    assert response.headers["x-request-id"]


async def test_unknown_route_and_method_answer_json(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    missing = await gw.client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == 404
    wrong = await gw.client.get("/resource")
    assert wrong.status_code == 405 and wrong.json()["code"] == 405


async def test_readyz_is_503_while_shutting_down(make_gateway: GatewayFactory) -> None:
    gw: Gateway = await make_gateway()
    gw.app.state.runtime.shutting_down = True
    assert (await gw.client.get("/readyz")).status_code == 503
    refused = await gw.client.post("/resource", json={"data": ROWS}, headers=headers())
    assert refused.status_code == 503
