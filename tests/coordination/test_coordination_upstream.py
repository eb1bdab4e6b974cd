"""Upstream-compatible routes, upstream's smoke flow, and signed notifications over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from coordination_harness import OP, Harness, auth
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ptx_chain_node.coordination import verify_signature
from ptx_chain_node.testing.server import LiveServer, serve

PROGRAM = json.dumps({"name": "sum", "version": "1"}).encode()


@dataclass
class Receiver:
    """An output party's client service: records each PUT /notify, fails the first N."""

    fail_first: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: LiveServer | None = None

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            self.received.append((dict(request.headers), await request.body()))
            if len(self.received) <= self.fail_first:
                return Response(status_code=503)
            self.arrived.set()
            return Response(status_code=204)

        return Starlette(routes=[Route("/client/notify", notify, methods=["PUT"])])

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return self.server.url + "/client"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    async with serve(r.app(), lifespan="off") as server:
        r.server = server
        yield r


async def create_upstream(h: Harness, parties: int = 2, **extra: Any) -> dict[str, Any]:
    files: dict[str, Any] = {
        "mpc_program": ("program.json", PROGRAM, "application/json"),
        "cs_config": ("config.json", b'{"nodes": 3}', "application/json"),
    }
    data = {"name": "smoke", "csv_header_line": "value", "number_of_parties": str(parties), **extra}
    r = await h.client.post("/collaboration", data=data, files=files, headers=OP)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_upstream_smoke_flow(harness: Harness, receiver: Receiver) -> None:
    collab = await create_upstream(harness)
    cid = collab["id"]
    assert collab["csv_specification"] == "value" and collab["participation_number"] == 2
    assert json.loads(__import__("base64").b64decode(collab["mpc_program"]))["name"] == "sum"
    tokens = {}
    for pid in ("1", "2"):
        r = await harness.client.post(f"/collaboration/{cid}/register-input-party/{pid}")
        assert r.status_code == 200, r.text
        assert r.json()["collaboration_id"] == cid and r.json()["secret_ids"] is None
        tokens[pid] = r.json()["token"]
    r = await harness.client.post(
        f"/collaboration/{cid}/register-output-party/9",
        params={"party_client_endpoint": receiver.endpoint},
        headers=OP,
    )
    assert r.status_code == 200, r.text
    output = r.json()
    values = {"1": [3, 4, 5], "2": [10]}
    for pid, column in values.items():
        config = await harness.client.get(
            f"/collaboration/{cid}/compute_config", headers=auth(tokens[pid])
        )
        assert config.status_code == 200
        secret = harness.engine.share(column)
        r = await harness.client.post(
            f"/collaboration/{cid}/confirm-upload/{pid}", json=[secret], headers=auth(tokens[pid])
        )
        assert r.status_code == 200, r.text
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    headers, raw = receiver.received[-1]
    body = json.loads(raw)
    assert body["message"] == "Success" and body["code"] == 200
    assert body["collaborationId"] == cid
    assert verify_signature(
        output["notify_secret"], headers["x-ptx-timestamp"], raw, headers["x-ptx-signature"]
    )
    r = await harness.client.get(f"/collaboration/{cid}/result_ids", headers=auth(output["token"]))
    assert r.status_code == 200
    assert r.json()[0] == body["secretId"]
    assert harness.engine.open(body["secretId"]) == [22]


async def test_notifications_are_retried_and_every_attempt_recorded(
    harness: Harness, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    cid = (await create_upstream(harness, parties=1))["id"]
    r = await harness.client.put(
        f"/collaboration/{cid}/register-output-party/o",
        params={"party_client_endpoint": receiver.endpoint},
        headers=OP,
    )
    assert r.status_code == 200
    token = (await harness.client.put(f"/collaboration/{cid}/register-input-party/p")).json()[
        "token"
    ]
    r = await harness.client.put(
        f"/confirm-upload/{cid}/p", json=[harness.engine.share([1])], headers=auth(token)
    )
    assert r.status_code == 200
    await asyncio.wait_for(receiver.arrived.wait(), 10)
    await harness.coordinator.idle()
    [notification] = await harness.coordinator.outbox.for_collaboration(cid)
    attempts = await harness.coordinator.outbox.attempts(notification.id)
    assert [a.status_code for a in attempts] == [None, None, 204]
    assert [a.error for a in attempts] == ["HTTP 503", "HTTP 503", None]
    assert notification.state.value == "delivered" and notification.attempts == 3
    # The same signed body each time.
    assert len({raw for _, raw in receiver.received}) == 1


async def test_upstream_create_errors(harness: Harness) -> None:
    files = {"mpc_program": ("p", PROGRAM)}
    data = {"name": "x", "csv_header_line": "v", "number_of_parties": "2"}
    r = await harness.client.post("/collaboration", data=data, files=files)
    assert r.status_code == 401 and set(r.json()) >= {"code", "message"}
    source = {"mpc_program": ("p.mpc", b"from Compiler import *\nsint(1)")}
    r = await harness.client.post("/collaboration", data=data, files=source, headers=OP)
    assert r.status_code == 422 and "mpc_program" in r.json()["message"]
    bad_config = {**files, "cs_config": ("c", b"{not json")}
    r = await harness.client.post("/collaboration", data=data, files=bad_config, headers=OP)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cs_config"
    r = await harness.client.post(
        "/collaboration", data={**data, "number_of_parties": "two"}, files=files, headers=OP
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "number_of_parties"
    r = await harness.client.post(
        "/collaboration", data={**data, "csv_header_line": "a,a"}, files=files, headers=OP
    )
    assert r.status_code == 422
    r = await harness.client.post("/collaboration", json={"name": "x"}, headers=OP)
    assert r.status_code in (400, 422)
    r = await harness.client.post(
        "/collaboration", data={**data, "mpc_program": "sum@1"}, headers=OP
    )
    assert r.status_code == 200, r.text
    assert (await harness.client.get("/collaboration")).json()[0]["name"] == "x"


async def test_upstream_routes_and_their_errors(harness: Harness) -> None:
    assert (await harness.client.get("/ping")).status_code == 200
    status = (await harness.client.get("/sys_status")).json()
    assert status["status"] == "ok"
    r = await harness.client.get("/collaboration/17")
    assert r.status_code == 404 and set(r.json()) >= {"code", "message"}
    missing = "00000000-0000-4000-8000-000000000000"
    assert (await harness.client.get(f"/collaboration/{missing}")).status_code == 404
    r = await harness.client.post(f"/collaboration/{missing}/register-input-party/1")
    assert r.status_code == 404

    cid = (await create_upstream(harness))["id"]
    c = f"/collaboration/{cid}"
    assert (await harness.client.get(c)).json()["id"] == cid
    first = await harness.client.post(f"{c}/register-input-party/1")
    assert first.status_code == 200
    token = first.json()["token"]
    assert (await harness.client.post(f"{c}/register-input-party/1")).status_code == 208
    assert (await harness.client.put(f"{c}/register-input-party/1")).status_code == 208
    mine = await harness.client.put(f"{c}/register-input-party/1", headers=auth(token))
    assert mine.status_code == 200
    r = await harness.client.post(f"{c}/register-output-party/9")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "party_client_endpoint"
    r = await harness.client.post(
        f"{c}/register-output-party/9", params={"party_client_endpoint": "http://x.test"}
    )
    assert r.status_code == 401
    r = await harness.client.post(
        f"{c}/register-output-party/9", params={"party_client_endpoint": "not a url"}, headers=OP
    )
    assert r.status_code == 422
    r = await harness.client.post(
        f"{c}/register-output-party/9",
        params={"party_client_endpoint": "http://x.test"},
        headers=OP,
    )
    assert r.status_code == 200
    out_token = r.json()["token"]
    r = await harness.client.post(
        f"{c}/register-output-party/9",
        params={"party_client_endpoint": "http://x.test"},
        headers=OP,
    )
    assert r.status_code == 208
    # result_ids before the start: 404 (upstream), and only for output parties.
    assert (await harness.client.get(f"{c}/result_ids")).status_code == 401
    assert (await harness.client.get(f"{c}/result_ids", headers=auth(token))).status_code == 403
    r = await harness.client.get(f"{c}/result_ids", headers=auth(out_token))
    assert r.status_code == 404 and r.json()["code"] == 404
    # input-parties: members only; secret ids only for the operator.
    assert (await harness.client.get(f"{c}/input-parties")).status_code == 401
    secret = harness.engine.share([5])
    r = await harness.client.post(f"{c}/confirm-upload/1", json=[secret])
    assert r.status_code == 401
    r = await harness.client.post(
        f"{c}/confirm-upload/1", json={"not": "a list"}, headers=auth(token)
    )
    assert r.status_code == 422
    r = await harness.client.post(f"{c}/confirm-upload/2", json=[secret], headers=auth(token))
    assert r.status_code == 404
    r = await harness.client.post(f"{c}/confirm-upload/1", json=[secret], headers=auth(token))
    assert r.status_code == 200
    r = await harness.client.put(f"/confirm-upload/{cid}/1", json=[secret], headers=auth(token))
    assert r.status_code == 200  # idempotent
    listed = (await harness.client.get(f"{c}/input-parties", headers=auth(token))).json()
    assert listed == [
        {"collaboration_id": cid, "party_id": "1", "secret_ids": None, "confirmed": True}
    ]
    listed = (await harness.client.get(f"{c}/input-parties", headers=OP)).json()
    assert listed[0]["secret_ids"] == [secret]
    for path in ("compute_config", "compute-config"):
        r = await harness.client.get(f"{c}/{path}", headers=auth(token))
        assert r.status_code == 200 and r.json()["nodes"] == 3
        assert (await harness.client.get(f"{c}/{path}")).status_code == 401
    # Withdraw and delete.
    r = await harness.client.delete(f"{c}/register-input-party/1", headers=auth(token))
    assert r.status_code == 200
    assert (await harness.client.delete(c)).status_code == 401
    assert (await harness.client.delete(c, headers=OP)).status_code == 200
    assert (await harness.client.get(c)).status_code == 404


async def test_result_ids_while_running_and_after_failure(harness: Harness) -> None:
    harness.engine.delay = 0.3
    cid = (await create_upstream(harness, parties=1))["id"]
    c = f"/collaboration/{cid}"
    r = await harness.client.post(
        f"{c}/register-output-party/o",
        params={"party_client_endpoint": "http://127.0.0.1:9"},
        headers=OP,
    )
    out = auth(r.json()["token"])
    token = (await harness.client.post(f"{c}/register-input-party/p")).json()["token"]
    await harness.client.post(
        f"{c}/confirm-upload/p", json=[harness.engine.share([1])], headers=auth(token)
    )
    r = await harness.client.get(f"{c}/result_ids", headers=out)
    assert r.status_code == 409 and r.json()["code"] == 409
    await harness.coordinator.runner.idle()
    assert (await harness.client.get(f"{c}/result_ids", headers=out)).status_code == 200

    harness.engine.fail_with = "boom"
    cid = (await create_upstream(harness, parties=1))["id"]
    c = f"/collaboration/{cid}"
    r = await harness.client.post(
        f"{c}/register-output-party/o",
        params={"party_client_endpoint": "http://127.0.0.1:9"},
        headers=OP,
    )
    out = auth(r.json()["token"])
    token = (await harness.client.post(f"{c}/register-input-party/p")).json()["token"]
    await harness.client.post(
        f"{c}/confirm-upload/p", json=[harness.engine.share([1])], headers=auth(token)
    )
    await harness.coordinator.runner.idle()
    r = await harness.client.get(f"{c}/result_ids", headers=out)
    assert r.status_code == 500 and "boom" in r.json()["message"]
