"""``bench/mpc.py`` end to end on tiny data: every variant runs and agrees with numpy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_mpc_benchmark_runs_and_checks_its_results(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    options = ["--rows", "40,90", "--programs", "mean,median", "--row-level-max", "40"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "mpc.py"), *options, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(out.read_text())
    assert [(r["rows"], r["program"]) for r in rows] == [(40, "mean"), (40, "median"), (90, "mean")]
    assert all(r["ok"] for r in rows)
    for row in rows:
        assert set(row["seconds"]) == {"engine", "mpyc", "numpy"}
        assert all(s > 0 for s in row["seconds"].values())
        assert all(mb > 10 for mb in row["peak_mb"].values())  # a Python process at least
    assert "skipped (row-level, more than 40 rows): median@90" in done.stdout
