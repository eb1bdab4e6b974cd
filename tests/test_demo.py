"""The README's first command: the demo runs a whole chain by MPC and checks its result."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.demo import CHAINS, Progress, close_enough, load_rows, plaintext_statistics, run_demo
from ptx_chain_node.chains.config import load_chain_file


@pytest.mark.slow
async def test_demo_chain_result_matches_plaintext() -> None:
    report = await run_demo(Progress(quiet=True), timeout=60)
    assert report["match"] is True
    rows = [r for name in report["providers"] for r in load_rows(name)]
    config = load_chain_file(CHAINS).chains[0]
    assert close_enough(report["result"], plaintext_statistics(config, rows))
    assert sum(report["result"]["count_by_category"].values()) == len(rows)
    assert report["parties"] == report["providers"]  # one input party per thread
    assert report["job"]["state"] == "resumed" and report["job"]["attempts"] == 1
    assert report["consumerReceived"]["data"]["statistics"] == report["result"]


def test_close_enough_sees_differences() -> None:
    assert close_enough({"a": [1, 2.0]}, {"a": [1, 2.0 + 1e-12]})
    assert not close_enough({"a": [1, 2.0]}, {"a": [1, 2.1]})
    assert not close_enough({"a": 1}, {"b": 1})
    assert not close_enough(None, {"a": 1})


def test_plaintext_statistics_of_a_tiny_set() -> None:
    config = load_chain_file(CHAINS).chains[0]
    rows = [
        {"salary": 35_000, "category": "nurse"},
        {"salary": 45_000, "category": "nurse"},
        {"salary": 80_000, "category": "analyst"},
        {"salary": 52_000, "category": "teacher"},
        {"salary": 52_000, "category": "teacher"},
    ]
    stats = plaintext_statistics(config, rows)
    assert stats["mean_salary"] == 52_800
    assert stats["salary_variance"] == pytest.approx(279_700_000, rel=1e-12)
    assert stats["salary_histogram"]["[30000, 40000)"] == 1
    assert stats["salary_histogram"]["[70000, 1000000]"] == 1
    assert stats["count_by_category"] == {
        "engineer": 0,
        "nurse": 2,
        "teacher": 2,
        "technician": 0,
        "analyst": 1,
    }


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
