"""The party client: input checks, local pre-aggregation and sharing, and the CLI end to end."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pytest

from ptx_chain_node.coordination.collaboration import InputSpec
from ptx_chain_node.errors import PtxError
from ptx_chain_node.mpc.programs.moments import REAL
from ptx_chain_node.mpc.registry import binding
from ptx_chain_node.mpc.rows import parse_csv, parse_json
from ptx_chain_node.mpc.sharing import reveal
from ptx_chain_node.mpc.upload import prepare_upload

SPEC = InputSpec.model_validate(
    {
        "columns": [
            {"name": "salary", "type": "fixed", "scale": 2, "min": 0, "max": 100000},
            {"name": "age", "type": "integer", "min": 18, "max": 70},
            {"name": "dept", "type": "categorical", "categories": ["ops", "dev", "sales"]},
        ],
        "min_rows": 2,
        "max_rows": 50,
    }
)


def _problems(exc: pytest.ExceptionInfo[PtxError]) -> dict[str, str]:
    return {p.field: p.problem for p in exc.value.problems}


def test_csv_rows_are_typed_by_the_specification() -> None:
    columns = parse_csv(SPEC, "age,salary,dept,extra\n30,1234.5,dev,x\n41, 99.99 ,ops,y\n")
    assert columns == {
        "salary": [Decimal("1234.5"), Decimal("99.99")],
        "age": [30, 41],
        "dept": [1, 0],
    }


def test_violations_name_the_row_the_column_and_the_line() -> None:
    text = (
        "salary,age,dept\n"
        "100.00,30,dev\n"
        "12.345,30,dev\n"  # too many decimals
        "100,17,dev\n"  # below min
        "100,3.5,dev\n"  # not whole
        "100,30,hr\n"  # unknown category
        "-1,30,ops\n"  # below min
        ",30,ops\n"  # missing
    )
    with pytest.raises(PtxError) as caught:
        parse_csv(SPEC, text)
    assert caught.value.status == 422
    problems = _problems(caught)
    assert problems == {
        "rows[2].salary": "more than 2 decimal places (line 3)",
        "rows[3].age": "below the minimum 18 (line 4)",
        "rows[4].age": "not a whole number (line 5)",
        "rows[5].dept": "not one of the 3 categories (line 6)",
        "rows[6].salary": "below the minimum 0 (line 7)",
        "rows[7].salary": "missing value (line 8)",
    }
    assert "12.345" not in str(caught.value.as_body())  # values never reach the error


def test_missing_columns_and_row_limits_are_refused() -> None:
    with pytest.raises(PtxError) as caught:
        parse_csv(SPEC, "salary,dept\n1,dev\n2,dev\n")
    assert _problems(caught) == {"header.age": "missing column"}
    with pytest.raises(PtxError) as caught:
        parse_json(SPEC, json.dumps([{"salary": 1, "age": 20, "dept": "ops"}]))
    assert _problems(caught) == {"rows": "1 rows; at least 2 are required"}
    with pytest.raises(PtxError) as caught:
        parse_json(SPEC, json.dumps({"rows": [{"salary": 1, "age": True, "dept": "ops"}] * 2}))
    assert _problems(caught)["rows[1].age"] == "not a number"


def test_decomposable_programs_share_only_the_aggregates() -> None:
    rng = random.Random(3)
    rows = [
        {
            "salary": f"{rng.randrange(0, 10**7) / 100:.2f}",
            "age": rng.randrange(18, 71),
            "dept": rng.choice(["ops", "dev", "sales"]),
        }
        for _ in range(40)
    ]
    columns = parse_json(SPEC, json.dumps(rows))
    found = binding("mean", "1.0.0", {"scale": 2, "columns": {"value": "salary"}})
    prepared = prepare_upload(found, columns, m=3, t=1)
    assert prepared.rows == 40
    assert [len(v.values) for v in prepared.vectors] == [2, 2, 2]  # [n, sum], not 40 rows
    assert [v.party for v in prepared.vectors] == [0, 1, 2]
    aggregates = found.bound.program.stype.signed(reveal(prepared.vectors[:2]))
    total = sum(Decimal(r["salary"]) for r in rows)
    assert aggregates == [40 << 64, int(total * 100) << 64]  # fixed point, f = 64
    # any single node's share is independent of the data: a second split differs
    again = prepare_upload(found, columns, m=3, t=1)
    assert again.vectors[0].values != prepared.vectors[0].values


# -- the CLI against a real gateway with its 3 local nodes ---------------------------------


def _script() -> str:
    beside = Path(sys.executable).parent / "ptx-chain-node"
    return str(beside) if beside.exists() else str(shutil.which("ptx-chain-node"))


def _free_port() -> int:
    from ptx_chain_node.mpc.runner import free_ports

    return free_ports(1)[0]


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


def _client(*args: str) -> tuple[int, Any]:
    result = subprocess.run(
        [_script(), "client", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return result.returncode, json.loads(result.stdout)


@pytest.mark.slow
def test_cli_upload_and_result_end_to_end(tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'store_url = "sqlite:///{tmp_path / "gw.db"}"\n'
        "[coordination]\nrun_poll_interval = 0.1\n"
        f'[mpyc]\nlocal_data_dir = "{tmp_path / "nodes"}"\n'
    )
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [_script(), "serve", "--config", str(config), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(url + "/livez")
        spec = SPEC.model_dump(exclude_none=True)
        created = httpx.post(
            url + "/v1/collaborations",
            json={
                "name": "mean salary",
                "program": {
                    "name": "mean",
                    "version": "1.0.0",
                    "parameters": {"scale": 2, "min_group_size": 5, "columns": {"value": "salary"}},
                },
                "input_specification": spec,
                "number_of_parties": 3,
                "output_parties": [{"id": "out", "endpoint": "http://127.0.0.1:9/n"}],
                "engine": "mpyc",
            },
        ).json()
        cid, out_token = created["id"], created["output_parties"][0]["token"]
        tokens = [
            httpx.post(f"{url}/v1/collaborations/{cid}/input-parties/p{j}").json()["token"]
            for j in range(3)
        ]
        grant = httpx.get(
            f"{url}/v1/collaborations/{cid}/input-parties/p0/node-token",
            headers={"authorization": f"Bearer {tokens[0]}"},
        ).json()
        for node in grant["nodes"]:  # serve started 3 local nodes
            _wait(node["url"] + "/health")
        assert len(grant["nodes"]) == 3

        rng = random.Random(21)
        salaries = []
        for j in range(3):
            rows = [(rng.randrange(0, 10**7), rng.randrange(18, 71)) for _ in range(20)]
            salaries += [Fraction(cents, 100) for cents, _ in rows]
            lines = [f"{c / 100:.2f},{a},dev" for c, a in rows]
            (tmp_path / f"p{j}.csv").write_text("salary,age,dept\n" + "\n".join(lines) + "\n")
        common = ["--coordinator", url, "--collaboration", cid]

        bad = tmp_path / "bad.csv"
        bad.write_text("salary,age,dept\n10.00,30,dev\n10.00,99,dev\n")
        code, answer = _client("upload", *common, "--party", "p0", "--token", tokens[0], str(bad))
        assert code == 1
        assert answer["code"] == 422
        assert answer["errors"] == [
            {"field": "rows[2].age", "problem": "above the maximum 70 (line 3)"}
        ]

        uploads = [
            subprocess.Popen(
                [
                    _script(),
                    "client",
                    "upload",
                    *common,
                    "--party",
                    f"p{j}",
                    "--token",
                    tokens[j],
                    "--approve",
                    str(tmp_path / f"p{j}.csv"),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for j in range(3)
        ]
        for j, process in enumerate(uploads):
            out, _ = process.communicate(timeout=60)
            assert process.returncode == 0, out
            receipt = json.loads(out)
            assert (receipt["rows"], receipt["nodes"], receipt["approved"]) == (20, 3, True)
            assert receipt["party_id"] == f"p{j}"

        deadline = time.monotonic() + 30
        while (state := httpx.get(f"{url}/v1/collaborations/{cid}/status").json()["state"]) in (
            "open",
            "ready",
            "running",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert state == "done"
        code, answer = _client("result", *common, "--party", "out", "--token", out_token)
        assert code == 0, answer
        (value,) = answer["result"].values()
        assert REAL.admits(value, float(sum(salaries) / len(salaries)))
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        finally:
            if serve.poll() is None:
                serve.kill()
            log.close()
    text = (tmp_path / "serve.log").read_text()
    assert "NO confidentiality" in text
    assert serve.returncode == 0
