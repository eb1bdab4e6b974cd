"""``client serve`` over Carbyne Stack, end to end on loopback.

Three fake VCPs (``testing.fake_vcp``: the documented Amphora and Ephemeral protocol), each
under its own uvicorn on 127.0.0.1; the gateway's coordinator with the ``carbynestack``
engine under uvicorn; one client service per input party (upstream's ``POST /secrets``,
served on loopback) and the output party's ``ptx-chain-node client serve`` process. Results
are checked against the plaintext recomputed from the same random rows; failures (corrupted
masks, a VCP down, no VCP token) must confirm nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.client_service import create_client_service_app
from gateway.settings import Settings
from ptx_chain_node.carbynestack.coordination_engine import CarbyneStackCoordinationEngine
from ptx_chain_node.coordination import Coordinator
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.mpc.client_service import ClientService
from ptx_chain_node.mpc.runner import free_ports
from ptx_chain_node.testing.fake_vcp import FakeCarbyneStack
from ptx_chain_node.testing.server import LiveServer, serve

VCP_TOKEN = "vcp-bearer-token-for-tests-0123"
OPERATOR = "operator-token-for-tests-0123"
NOTIFY_SECRET = "notify-secret-for-tests-0123456789"
PARTIES = ("a", "b", "c")
SPEC = {
    "columns": [
        {"name": "stays", "type": "integer", "min": 0, "max": 60},
        {"name": "cost", "type": "fixed", "scale": 2, "min": -500, "max": 5000},
    ],
    "max_rows": 1000,
}
FAST = {
    "engines": [],
    "sweep_interval": 0.05,
    "run_poll_interval": 0.02,
    "notify_initial_backoff": 0.02,
    "notify_max_backoff": 0.1,
    "notify_deadline": 10.0,
    "notify_timeout": 5.0,
}
Rows = list[tuple[int, int]]  # (stays, cost in cents)


@dataclass
class Stack:
    """Fake VCPs and the coordinator, each on its own loopback port."""

    cloud: FakeCarbyneStack
    vcps: list[LiveServer]
    coordinator: LiveServer
    app: Starlette
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return self.coordinator.url

    def compute_config(self) -> dict[str, Any]:
        f = self.cloud.field
        providers = [
            {
                "id": i,
                "amphoraServiceUrl": f"{vcp.url}/amphora",
                "castorServiceUrl": f"{vcp.url}/castor",
                "ephemeralServiceUrl": f"{vcp.url}/ephemeral",
                "baseUrl": f"{vcp.url}/",
            }
            for i, vcp in enumerate(self.vcps, start=1)
        ]
        return {"prime": f.prime, "r": f.r, "rinv": f.rinv, "providers": providers}

    async def create(self, program: dict[str, Any], out_url: str) -> tuple[str, str]:
        """A carbynestack collaboration (explicit approval); its id and the output token."""
        body = {
            "name": "stays",
            "program": program,
            "input_specification": SPEC,
            "input_parties": [{"id": p, "identity": f"did:web:{p}.example"} for p in PARTIES],
            "output_parties": [{"id": "out", "endpoint": out_url, "notify_secret": NOTIFY_SECRET}],
            "engine": "carbynestack",
            "compute_config": self.compute_config(),
            "approval": "explicit",
        }
        answer = await self.http.post(
            f"{self.url}/v1/collaborations",
            json=body,
            headers={"authorization": f"Bearer {OPERATOR}"},
        )
        assert answer.status_code == 201, answer.text
        doc = answer.json()
        return str(doc["id"]), str(doc["output_parties"][0]["token"])

    async def register(self, cid: str, pid: str) -> str:
        answer = await self.http.post(f"{self.url}/v1/collaborations/{cid}/input-parties/{pid}")
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    async def confirmed(self, cid: str, pid: str) -> list[str] | None:
        """The secret ids the coordinator recorded for ``pid`` (None: not confirmed)."""
        coordinator: Coordinator = self.app.state.runtime.coordination.coordinator
        party = await coordinator.store.party(cid, Role.INPUT, pid)
        assert party is not None
        return party.secret_ids if party.confirmed_at is not None else None

    async def state(self, cid: str) -> str:
        answer = await self.http.get(f"{self.url}/v1/collaborations/{cid}/status")
        return str(answer.json()["state"])


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    cloud = FakeCarbyneStack(3, token=VCP_TOKEN, game_timeout=5.0)
    vcps = [LiveServer(vcp, lifespan="off") for vcp in cloud.vcps]
    engine = CarbyneStackCoordinationEngine(VCP_TOKEN, timeout=5.0, execute_timeout=15.0)
    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'coordinator.db'}",
        operator_token=OPERATOR,
        coordination=FAST,
        log_json=False,
    )
    app = create_app(settings, configure_logging=False)
    app.state.runtime.coordination.use_engine(engine)
    try:
        for vcp in vcps:
            await vcp.start()
        async with serve(app) as coordinator, httpx.AsyncClient(timeout=30) as http:
            yield Stack(cloud, vcps, coordinator, app, http)
    finally:
        for vcp in vcps:
            await vcp.stop()
        await engine.close()


@asynccontextmanager
async def party_service(
    stack: Stack, pid: str, token: str, *, vcp_token: str | None = VCP_TOKEN, port: int = 0
) -> AsyncIterator[str]:
    """One party's client service (approving on upload) on loopback; its URL."""
    service = ClientService(
        httpx.AsyncClient(timeout=30),
        stack.url,
        pid,
        token,
        approve=True,
        vcp_token=vcp_token,
        timeout=10.0,
    )
    async with serve(create_client_service_app(service), port=port) as server:
        yield server.url


def random_rows(rng: random.Random) -> dict[str, Rows]:
    return {
        pid: [
            (rng.randint(0, 60), rng.randint(-50_000, 500_000)) for _ in range(rng.randint(1, 40))
        ]
        for pid in PARTIES
    }


def csv_of(rows: Rows) -> dict[str, Any]:
    """Upstream's multipart ``data_csv`` with the typed columns (cost as a decimal)."""
    lines = ["cost,stays"] + [f"{Decimal(cents).scaleb(-2)},{stays}" for stays, cents in rows]
    return {"files": {"data_csv": ("data.csv", ("\n".join(lines) + "\n").encode(), "text/csv")}}


async def upload(stack: Stack, url: str, cid: str, pid: str, rows: Rows) -> httpx.Response:
    return await stack.http.post(f"{url}/secrets/{cid}/{pid}", **csv_of(rows))


async def cli(
    action: str, coordinator: str, cid: str, pid: str, token: str, *extra: str | Path
) -> tuple[int, Any]:
    """``ptx-chain-node client <action>`` as a process (VCP token in ``$PTX_VCP_TOKEN``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "client",
        action,
        "--coordinator",
        coordinator,
        "--collaboration",
        cid,
        "--party",
        pid,
        "--token",
        token,
        *map(str, extra),
        env={**os.environ, "PTX_VCP_TOKEN": VCP_TOKEN},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, json.loads(out)


async def until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := await check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found


@pytest.mark.slow
async def test_client_serve_sum_over_vcps_equals_plaintext(stack: Stack, tmp_path: Path) -> None:
    (out_port,) = free_ports(1)
    out_url = f"http://127.0.0.1:{out_port}"
    cid, out_token = await stack.create({"name": "sum", "version": "1"}, out_url)
    token_file = tmp_path / "vcp-token"
    token_file.write_text(VCP_TOKEN + "\n")
    log = tmp_path / "out.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "client",
            "serve",
            "--coordinator",
            stack.url,
            "--party",
            "out",
            "--port",
            str(out_port),
            "--notify-secret",
            NOTIFY_SECRET,
            "--vcp-token-file",
            str(token_file),
            env={**os.environ, "PTX_PARTY_TOKEN": out_token},
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:

        async def healthy() -> bool:
            try:
                return (await stack.http.get(f"{out_url}/health")).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy)
        early = await stack.http.get(f"{out_url}/result/{cid}/out")
        assert early.status_code in (404, 409), early.text

        data = random_rows(random.Random(21))
        for pid, rows in data.items():
            token = await stack.register(cid, pid)
            if pid == "c":  # this one with ``client upload`` (VCP token from the environment)
                path = tmp_path / "c.csv"
                path.write_bytes(csv_of(rows)["files"]["data_csv"][1])
                code, receipt = await cli("upload", stack.url, cid, pid, token, "--approve", path)
                assert code == 0, receipt
                assert (receipt["engine"], receipt["rows"], receipt["vcps"]) == (
                    "carbynestack",
                    len(rows),
                    3,
                )
                assert await stack.confirmed(cid, pid) == receipt["secret_ids"]
                continue
            async with party_service(stack, pid, token) as url:
                answer = await upload(stack, url, cid, pid, rows)
                assert answer.status_code == 200, answer.text
                secret_ids = answer.json()
                assert len(secret_ids) == 2  # one secret per input column, in spec order
                assert await stack.confirmed(cid, pid) == secret_ids
                assert all(stack.cloud.held_by(s) == [True] * 3 for s in secret_ids)
                # each VCP holds a share only: no single VCP's share is the column itself
                stays = [s for s, _ in rows]
                assert stack.cloud.reveal(secret_ids[0]) == stays
                p = stack.cloud.field.prime
                for vcp in stack.cloud.vcps:
                    shares = vcp.secrets[secret_ids[0]].shares
                    assert [x % p for x in stays] != shares
                denied = await stack.http.get(f"{url}/result/{cid}/{pid}")
                assert denied.status_code in (403, 404), denied.text

        async def notice() -> dict[str, Any] | None:
            answer = await stack.http.get(f"{out_url}/notices/{cid}")
            return answer.json() if answer.status_code == 200 else None

        noticed = await until(notice)
        assert noticed["code"] == 200, noticed
        assert len(noticed["result_ids"]) == 2

        answer = await stack.http.get(f"{out_url}/result/{cid}/out")
        assert answer.status_code == 200, answer.text
        doc = answer.json()
        assert doc["engine"] == "carbynestack"
        assert doc["result_ids"] == noticed["result_ids"]
        all_rows = [row for rows in data.values() for row in rows]
        assert doc["result"] == {
            "stays": sum(s for s, _ in all_rows),
            "cost": str(Decimal(sum(c for _, c in all_rows)).scaleb(-2)),
        }
        code, printed = await cli("result", stack.url, cid, "out", out_token)
        assert code == 0, printed
        assert printed["result"] == doc["result"]
    finally:
        process.terminate()
        await process.wait()
    text = log.read_text()
    assert out_token not in text and VCP_TOKEN not in text and NOTIFY_SECRET not in text


async def test_failed_uploads_confirm_nothing_and_the_mean_equals_plaintext(
    stack: Stack,
) -> None:
    (out_port,) = free_ports(1)
    out_url = f"http://127.0.0.1:{out_port}"
    mean = {"name": "mean", "version": "1", "parameters": {"columns": ["cost"]}}
    cid, out_token = await stack.create(mean, out_url)
    data = random_rows(random.Random(22))
    tokens = {pid: await stack.register(cid, pid) for pid in PARTIES}
    cloud = stack.cloud

    async with party_service(stack, "a", tokens["a"]) as url:
        # a VCP hands out corrupted masks: refused before anything is posted
        cloud.corrupt(1, "u")
        answer = await upload(stack, url, cid, "a", data["a"])
        assert answer.status_code == 502, answer.text
        assert "integrity check" in answer.json()["message"]
        assert cloud.masked_input_posts == 0
        cloud.corrupt(None)

        # VCP 2 is down: nothing is stored anywhere, nothing confirmed
        await stack.vcps[1].stop()
        answer = await upload(stack, url, cid, "a", data["a"])
        assert answer.status_code == 502, answer.text
        assert "VCP 2" in answer.json()["message"]
        assert "unreachable" in answer.json()["message"]
        await stack.vcps[1].start()
        assert all(not vcp.secrets for vcp in cloud.vcps)
        assert await stack.confirmed(cid, "a") is None
        assert await stack.state(cid) == "open"

    # a service without a VCP token refuses a carbynestack collaboration
    async with party_service(stack, "b", tokens["b"], vcp_token=None) as url:
        answer = await upload(stack, url, cid, "b", data["b"])
        assert answer.status_code == 503, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == ["engine"]
        assert await stack.confirmed(cid, "b") is None

    for pid in PARTIES:  # every VCP is healthy again: the same parties upload
        async with party_service(stack, pid, tokens[pid]) as url:
            answer = await upload(stack, url, cid, pid, data[pid])
            assert answer.status_code == 200, answer.text

    async def done() -> bool:
        state = await stack.state(cid)
        assert state != "failed"
        return state == "done"

    await until(done)
    async with party_service(stack, "out", out_token, port=out_port) as url:
        answer = await stack.http.get(f"{url}/result/{cid}/out")
        assert answer.status_code == 200, answer.text
        (mean_cost,) = answer.json()["result"].values()
        costs = [c for rows in data.values() for _, c in rows]
        exact = Fraction(sum(costs), len(costs)) / 100
        assert abs(Fraction(mean_cost) - exact) <= Fraction(1, 2**15)

        # a corrupted result share, then a VCP down: clear errors, no value
        cloud.corrupt(2, "w")
        answer = await stack.http.get(f"{url}/result/{cid}/out")
        assert answer.status_code == 502, answer.text
        assert "integrity check" in answer.json()["message"]
        assert "result" not in answer.json()
        cloud.corrupt(None)
        await stack.vcps[2].stop()
        answer = await stack.http.get(f"{url}/result/{cid}/out")
        assert answer.status_code == 502, answer.text
        assert "VCP 3" in answer.json()["message"]
