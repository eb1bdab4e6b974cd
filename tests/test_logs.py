"""Secrets and data never reach the logs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node import logs


def test_redact_replaces_sensitive_keys() -> None:
    event = {"event": "x", "password": "p", "Token": "t", "data": [1], "job_id": "j"}
    assert logs.redact(None, "info", event) == {
        "event": "x",
        "password": "[redacted]",
        "Token": "[redacted]",
        "data": "[redacted]",
        "job_id": "j",
    }


async def test_a_delivery_logs_ids_but_no_data_or_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'x.db'}",
        resources=[{"auth": {"username": "pdc", "password": "very-secret-pw"}}],
        resume={"delay": 0.01},
        log_level="debug",
    )
    resumed = []

    def pdc(request: httpx.Request) -> httpx.Response:
        resumed.append(request)
        return httpx.Response(200, json={})

    app = create_app(settings, transport=httpx.MockTransport(pdc))
    body = {
        "data": [{"email": "alice@example.org", "salary": 98765}],
        "username": "pdc",
        "password": "very-secret-pw",
    }
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client,
    ):
        ack = await client.post(
            "/resource",
            json=body,
            headers={
                "x-ptx-service-chain-id": "@supervisor:c1",
                "x-ptx-target-id": "t",
                "x-ptx-service-chain-next-target": "n",
            },
        )
        assert ack.status_code == 200
        for _ in range(200):
            if resumed:
                break
            await asyncio.sleep(0.01)
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    resumed = [line for line in lines if line.get("event") == "resumed"]
    assert resumed and resumed[0]["chain_id"] == "@supervisor:c1"
    assert resumed[0]["job_id"] == ack.json()["jobId"]
    for secret in ("very-secret-pw", "alice@example.org", "98765"):
        assert secret not in out
