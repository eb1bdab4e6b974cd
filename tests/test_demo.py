"""The README's first command: the demo runs a whole chain and checks its result."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.demo import Progress, close_enough, load_rows, run_demo
from ptx_chain_node.summary import summarize


async def test_demo_chain_result_matches_plaintext() -> None:
    report = await run_demo(Progress(quiet=True), timeout=60)
    assert report["match"] is True
    rows = [r for name in report["providers"] for r in load_rows(name)]
    assert close_enough(report["result"], summarize(rows))
    assert report["result"]["records"] == sum(report["providers"].values()) == len(rows)
    assert report["job"]["state"] == "resumed" and report["job"]["attempts"] == 1
    assert report["consumerReceived"]["data"]["total"] == report["result"]


def test_close_enough_sees_differences() -> None:
    assert close_enough({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-12]})
    assert not close_enough({"a": [1, 2.0]}, {"a": [1, 2.1]})
    assert not close_enough({"a": 1}, {"b": 1})


@pytest.mark.slow
def test_demo_command_json_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["match"] is True and "timings" in report
