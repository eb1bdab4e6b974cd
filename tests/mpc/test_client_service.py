"""The party client service (``client serve``): upstream's API against real nodes + coordinator."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.client_service import create_client_service_app
from ptx_chain_node.coordination.collaboration import InputSpec
from ptx_chain_node.coordination.notify import sign
from ptx_chain_node.errors import PtxError
from ptx_chain_node.mpc.client_service import ClientService, parse_data_csv, parse_notice
from ptx_chain_node.mpc.runner import free_ports

SPEC = {"columns": [{"name": "amount", "type": "integer", "min": 0, "max": 1_000_000}]}
TYPED = InputSpec.model_validate(
    {
        "columns": [
            {"name": "amount", "type": "integer", "min": 0, "max": 100},
            {"name": "dept", "type": "categorical", "categories": ["ops", "dev"]},
        ]
    }
)
NOTIFY_SECRET = "s3cret-notify-key-0123456789"


def test_upstream_single_column_csv_is_read_under_any_header() -> None:
    spec = InputSpec.model_validate(SPEC)
    assert parse_data_csv(spec, "value\n3\n4\n") == {"amount": [3, 4]}
    assert parse_data_csv(spec, "\ufeffamount\r\n5\r\n") == {"amount": [5]}
    with pytest.raises(PtxError) as caught:
        parse_data_csv(spec, "value\n3\nx\n-1\n")
    assert caught.value.status == 422
    assert [(p.field, p.problem) for p in caught.value.problems] == [
        ("rows[2].amount", "not a number (line 3)"),
        ("rows[3].amount", "below the minimum 0 (line 4)"),
    ]


def test_typed_columns_are_checked_by_name() -> None:
    assert parse_data_csv(TYPED, "dept,amount\ndev,7\n") == {"amount": [7], "dept": [1]}
    with pytest.raises(PtxError) as caught:
        parse_data_csv(TYPED, "value\n3\n")  # two columns wanted: the header must name them
    assert {p.field for p in caught.value.problems} == {"header.amount", "header.dept"}


def test_notice_body_is_upstreams() -> None:
    body = b'{"message":"Success","code":200,"collaborationId":7,"secretId":"r1"}'
    notice = parse_notice(body)
    assert (notice.collaboration_id, notice.code, notice.result_ids) == ("7", 200, ["r1"])
    with pytest.raises(PtxError):
        parse_notice(body, path_cid="8")


# -- end to end: gateway (coordinator + 3 local nodes) in a process, parties' services -------


def _script() -> str:
    beside = Path(sys.executable).parent / "ptx-chain-node"
    return str(beside) if beside.exists() else str(shutil.which("ptx-chain-node"))


def _wait(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready within {timeout} s")


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            finally:
                if process.poll() is None:
                    process.kill()


def _multipart(text: str) -> dict[str, Any]:
    return {"files": {"data_csv": ("data.csv", text.encode(), "text/csv")}}


@pytest.mark.slow
async def test_client_services_upload_notify_and_result(tmp_path: Path) -> None:
    gw_port, out_port = free_ports(2)
    url, out_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{out_port}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'store_url = "sqlite:///{tmp_path / "gw.db"}"\n'
        "[coordination]\nrun_poll_interval = 0.1\n"
        f'[mpyc]\nlocal_data_dir = "{tmp_path / "nodes"}"\n'
    )
    gateway = [_script(), "serve", "--config", str(config), "--port", str(gw_port)]
    with _process(gateway, tmp_path / "gateway.log"):
        _wait(url + "/livez")
        created = httpx.post(
            url + "/v1/collaborations",
            json={
                "name": "total",
                "program": {
                    "name": "sum",
                    "version": "1.0.0",
                    "parameters": {"scale": 0, "min_group_size": 3, "columns": {"value": "amount"}},
                },
                "input_specification": SPEC,
                "number_of_parties": 3,
                "output_parties": [
                    {"id": "out", "endpoint": out_url, "notify_secret": NOTIFY_SECRET}
                ],
                "engine": "mpyc",
            },
        ).json()
        cid, out_token = created["id"], created["output_parties"][0]["token"]
        tokens = [
            httpx.post(f"{url}/v1/collaborations/{cid}/input-parties/p{j}").json()["token"]
            for j in range(3)
        ]
        serve_out = [
            _script(),
            "client",
            "serve",
            "--coordinator",
            url,
            "--party",
            "out",
            "--port",
            str(out_port),
            "--notify-secret",
            NOTIFY_SECRET,
        ]
        with _process([*serve_out, "--token", out_token], tmp_path / "out.log"):
            _wait(out_url + "/health")
            async with httpx.AsyncClient(timeout=60) as http:
                services = [
                    ClientService(http, url, f"p{j}", tokens[j], approve=True) for j in range(3)
                ]
                clients = [
                    httpx.AsyncClient(
                        transport=httpx.ASGITransport(app=create_client_service_app(s)),
                        base_url="http://party",
                        timeout=60,
                    )
                    for s in services
                ]
                try:
                    await _scenario(http, clients, url, cid, out_url, tmp_path)
                finally:
                    for client in clients:
                        await client.aclose()
        log = (tmp_path / "out.log").read_text()
        assert out_token not in log and NOTIFY_SECRET not in log


async def _scenario(
    http: httpx.AsyncClient,
    clients: list[httpx.AsyncClient],
    url: str,
    cid: str,
    out_url: str,
    tmp_path: Path,
) -> None:
    # nothing yet: the output party's result is not available
    early = await http.get(f"{out_url}/result/{cid}/out")
    assert early.status_code in (404, 409), early.text

    # a bad CSV is refused, naming the row; nothing is confirmed
    bad = await clients[0].post(f"/secrets/{cid}/p0", **_multipart("value\n1\n2\n1000001\n"))
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "rows[3].amount", "problem": "above the maximum 1e+06 (line 4)"}
    ]
    # a service acts for its own party only
    other = await clients[0].post(f"/secrets/{cid}/p1", **_multipart("value\n1\n"))
    assert other.status_code == 403
    missing = await clients[0].post(f"/secrets/{cid}/p0", files={"other": ("a", b"1")})
    assert missing.status_code == 422
    assert missing.json()["errors"] == [{"field": "data_csv", "problem": "required"}]
    not_form = await clients[0].post(f"/secrets/{cid}/p0", content=b"value\n1\n")
    assert not_form.status_code == 415

    rng = random.Random(4)
    values = [[rng.randrange(0, 10**6) for _ in range(rng.randrange(5, 30))] for _ in range(3)]
    for j, client in enumerate(clients):
        header = "amount" if j == 2 else "value"  # upstream's free header, or the typed one
        text = header + "\n" + "\n".join(map(str, values[j])) + "\n"
        answer = await client.post(f"/secrets/{cid}/p{j}", **_multipart(text))
        assert answer.status_code == 200, answer.text
        (secret_id,) = answer.json()
        assert isinstance(secret_id, str) and len(secret_id) == 36

    # the coordinator runs and notifies the output party's service (signed)
    deadline = time.monotonic() + 30
    while (notice := await http.get(f"{out_url}/notices/{cid}")).status_code == 404:
        assert time.monotonic() < deadline, "no notification"
        await asyncio.sleep(0.2)
    assert notice.json()["code"] == 200
    (result_id,) = notice.json()["result_ids"]

    # a forged or unsigned notification is refused and does not replace the real one
    body = json.dumps({"message": "x", "code": 500, "collaborationId": cid}).encode()
    stamp = str(int(time.time()))
    for headers in (
        {"x-ptx-timestamp": stamp, "x-ptx-signature": sign("wrong-key-0123456789", stamp, body)},
        {},
    ):
        refused = await http.put(f"{out_url}/notify/{cid}", content=body, headers=headers)
        assert refused.status_code == 401
    assert (await http.get(f"{out_url}/notices/{cid}")).json()["result_ids"] == [result_id]

    result = await http.get(f"{out_url}/result/{cid}/out")
    assert result.status_code == 200, result.text
    doc = result.json()
    assert doc["result_ids"] == [result_id]
    assert doc["result"] == {"sum": sum(map(sum, values))}
    # and the input parties' services cannot read it
    denied = await clients[0].get(f"/result/{cid}/p0")
    assert denied.status_code in (403, 404)
    assert (tmp_path / "out.log").exists()
