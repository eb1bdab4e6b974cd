"""Test harness: a running app (lifespan on) over a store, and request helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.settings import Settings
from ptx_chain_node.coordination import CollaborationRequest, Coordinator, LocalTestEngine
from ptx_chain_node.coordination.config import CoordinationService, CoordinationSettings
from ptx_chain_node.store import Database

OPERATOR = "operator-token-for-tests"
OP = {"authorization": f"Bearer {OPERATOR}"}

FAST = {
    "sweep_interval": 0.05,
    "run_poll_interval": 0.01,
    "run_lease_seconds": 5.0,
    "notify_initial_backoff": 0.01,
    "notify_max_backoff": 0.05,
    "notify_deadline": 3.0,
    "notify_timeout": 2.0,
}


def settings_for(store_url: str, **coordination: Any) -> Settings:
    return Settings(
        store_url=store_url,
        operator_token=OPERATOR,
        coordination={**FAST, **coordination},
        log_json=False,
    )


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@dataclass
class Harness:
    """The app under test, a client on it, and the engine it computes with."""

    app: Starlette
    client: httpx.AsyncClient
    engine: LocalTestEngine
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def coordinator(self) -> Coordinator:
        coordinator: Coordinator = self.app.state.runtime.coordination.coordinator
        return coordinator

    async def create(self, **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/collaborations", json=collaboration_body(**overrides), headers=OP
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        for party in body["output_parties"]:
            self.tokens["out:" + party["party_id"]] = party["token"]
        return body

    async def register(self, cid: str, pid: str) -> dict[str, Any]:
        response = await self.client.post(f"/v1/collaborations/{cid}/input-parties/{pid}")
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        self.tokens[pid] = body["token"]
        return body

    async def upload(self, cid: str, pid: str, rows: list[list[int]]) -> httpx.Response:
        """Share each column with the engine, then confirm the secret ids."""
        columns = list(zip(*rows, strict=True))
        secret_ids = [self.engine.share(list(c)) for c in columns]
        return await self.client.post(
            f"/v1/collaborations/{cid}/input-parties/{pid}/upload",
            json={"secret_ids": secret_ids, "rows": len(rows)},
            headers=auth(self.tokens[pid]),
        )

    async def approve(self, cid: str, pid: str, sha256: str) -> httpx.Response:
        return await self.client.post(
            f"/v1/collaborations/{cid}/input-parties/{pid}/approval",
            json={"program_sha256": sha256},
            headers=auth(self.tokens[pid]),
        )

    async def state(self, cid: str) -> str:
        response = await self.client.get(f"/v1/collaborations/{cid}/status")
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state


def collaboration_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "hospital stays",
        "program": {"name": "sum", "version": "1"},
        "input_specification": {
            "columns": [
                {"name": "stays", "type": "integer", "min": 0, "max": 1000},
                {"name": "cost", "type": "fixed", "scale": 2},
            ],
            "min_rows": 1,
            "max_rows": 100,
        },
        "input_parties": [
            {"id": "a", "identity": "did:web:a.example"},
            {"id": "b", "identity": "did:web:b.example"},
            {"id": "c", "identity": "https://catalog.example/offerings/c"},
        ],
        "output_parties": [{"id": "out", "endpoint": "http://notify.test/client"}],
        "engine": "local",
        "approval": "on_confirm",
    }
    body.update(overrides)
    return body


@asynccontextmanager
async def running(
    store_url: str, engine: LocalTestEngine | None = None, **coordination: Any
) -> AsyncIterator[Harness]:
    """An app with its lifespan running, driven through ASGITransport."""
    engine = engine or LocalTestEngine()
    app = create_app(settings_for(store_url, **coordination), configure_logging=False)
    app.state.runtime.coordination.use_engine(engine)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://coord"
        ) as client,
    ):
        yield Harness(app, client, engine)


@asynccontextmanager
async def service(
    store_url: str, engine: LocalTestEngine | None = None, **coordination: Any
) -> AsyncIterator[tuple[CoordinationService, LocalTestEngine]]:
    """A started CoordinationService (no HTTP) on ``store_url``."""
    engine = engine or LocalTestEngine()
    database = Database(store_url)
    await database.migrate()
    svc = CoordinationService(
        CoordinationSettings(**{**FAST, **coordination}), database, operator_token=OPERATOR
    )
    svc.use_engine(engine)
    await svc.start()
    try:
        yield svc, engine
    finally:
        await svc.stop()
        await database.dispose()


def request_model(**overrides: Any) -> CollaborationRequest:
    return CollaborationRequest.model_validate(collaboration_body(**overrides))
