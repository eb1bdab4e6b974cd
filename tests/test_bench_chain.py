"""``bench/chain.py`` end to end on the smallest size: the chain's result matches numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_chain_benchmark_runs_and_checks_its_result(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chain.py"), "--rows", "300", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = json.loads(out.read_text())
    assert row["ok"] and row["rows"] == 300
    assert row["parties"] == {"provider": 100, "north": 100, "south": 100}
    assert 0 < row["mpc_s"] < row["chain_s"]
    assert row["mpyc_s"] > 0
    assert all(row[k] > 10 for k in ("gateway_mb", "pdcs_mb", "nodes_mb", "mpyc_mb"))  # Python
    assert 0 < row["gateway_cpu_s"] < 60 and 0 < row["pdcs_cpu_s"] < 60
    assert "| 300 |" in done.stdout
