"""The resume call: exact body, classification, retries until a deadline."""

from __future__ import annotations

import json

import httpx
import pytest
from pytest_httpx import HTTPXMock

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.job import JobResult
from ptx_chain_node.resume import (
    PDCClient,
    ResumeBodyTooLarge,
    ResumeFailed,
    ResumePolicy,
    classify,
    resume_body,
)

CONTEXT = ChainContext(
    chain_id="@supervisor:" + "0f" * 64 + "-1744205299444-b236cf81",
    target_id="https://catalog.test/v1/catalog/infrastructureservices/67f669b57b3045a9bb30e240",
    next_target="https://catalog.test/next",
)
FAST = ResumePolicy(backoff_initial=0.01, backoff_max=0.05, deadline=2.0)
PDC = "http://pdc.test:3000"


def test_body_echoes_ids_byte_for_byte_and_never_host_uri() -> None:
    body = json.loads(resume_body(CONTEXT, JobResult(data={"mean": 1.5}, params={"k": 1}), 10**6))
    assert body == {
        "chainId": CONTEXT.chain_id,
        "targetId": CONTEXT.target_id,
        "data": {"mean": 1.5},
        "params": {"k": 1},
    }
    without_params = json.loads(resume_body(CONTEXT, JobResult(data=[1]), 10**6))
    assert "params" not in without_params and "hostURI" not in without_params


def test_body_over_the_limit_is_refused() -> None:
    with pytest.raises(ResumeBodyTooLarge, match="exceeds the resume limit"):
        resume_body(CONTEXT, JobResult(data="x" * 3000), 2048)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "ok"),
        (204, "ok"),
        (500, "retry"),
        (503, "retry"),
        (408, "retry"),
        (429, "retry"),
        (400, "fail"),
        (404, "fail"),
        (413, "fail"),
    ],
)
def test_classify(status: int, verdict: str) -> None:
    assert classify(status) == verdict


async def test_retries_transient_failures_then_succeeds(httpx_mock: HTTPXMock) -> None:
    url = f"{PDC}/service-chain/resume"
    httpx_mock.add_exception(httpx.ConnectError("refused"), url=url)
    httpx_mock.add_response(url=url, status_code=500)
    httpx_mock.add_response(url=url, status_code=429)
    httpx_mock.add_response(url=url, json={"message": "Node resumed successfully"})
    attempts: list[int] = []
    errors: list[str] = []

    async def on_attempt(n: int) -> None:
        attempts.append(n)

    async def on_error(error: str) -> None:
        errors.append(error)

    async with httpx.AsyncClient() as client:
        body = resume_body(CONTEXT, JobResult(data=1), 10**6)
        await PDCClient(PDC, client).resume(
            body, policy=FAST, remaining=5, on_attempt=on_attempt, on_error=on_error
        )
    assert attempts == [1, 2, 3, 4]
    assert len(errors) == 3 and "500" in errors[1]
    sent = httpx_mock.get_requests()
    assert all(r.content == body for r in sent)
    assert all(r.headers["content-type"] == "application/json" for r in sent)


async def test_413_fails_at_once(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{PDC}/service-chain/resume", status_code=413)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResumeFailed, match="413"):
            await PDCClient(PDC, client).resume(b"{}", policy=FAST, remaining=5)
    assert len(httpx_mock.get_requests()) == 1


async def test_500_until_the_deadline_fails_with_reason(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{PDC}/service-chain/resume", status_code=500, is_reusable=True)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ResumeFailed, match="deadline passed; last error: PDC answered 500"):
            await PDCClient(PDC, client).resume(b"{}", policy=FAST, remaining=0.3)
    assert len(httpx_mock.get_requests()) >= 2
