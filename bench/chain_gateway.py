"""``bench/chain.py``'s gateway in a process of its own, so it is measured apart from the
simulated PDCs: its CPU time over the chain, its peak memory (``VmHWM``) and the MPC runs
of its coordinator (start and end of every collaboration).

    python bench/chain_gateway.py SETTINGS.json REPORT.json   # serves until stdin closes
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.peak_memory import vm_hwm_mb  # noqa: E402


async def serve_gateway(settings_path: Path, report_path: Path) -> None:
    """The gateway process: serve until stdin closes, then report CPU, memory, runs."""
    from gateway.app import create_app
    from gateway.settings import Settings
    from ptx_chain_node import logs
    from ptx_chain_node.testing import serve

    logs.configure("warning", json=False)
    app = create_app(Settings(**json.loads(settings_path.read_text())), configure_logging=False)
    async with serve(app) as server:
        cpu = time.process_time()
        ready = report_path.with_suffix(".url")
        ready.with_suffix(".tmp").write_text(server.url)
        ready.with_suffix(".tmp").rename(ready)
        await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes it
        cpu = time.process_time() - cpu
        records = await app.state.runtime.coordination.coordinator.store.collaborations()
    runs = [[r.run_started_at, r.finished_at, str(r.state)] for r in records]
    report = {"cpu_s": cpu, "peak_mb": vm_hwm_mb(), "runs": runs}
    report_path.write_text(json.dumps(report))


def _plain(value: object) -> object:
    """Settings values as JSON: secrets revealed (for the child only), paths as text."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)


class GatewayProcess:
    """The gateway in a process of its own (:func:`serve_gateway`); its pid goes into
    ``exclude`` (a memory sampler's) as soon as it exists."""

    def __init__(self, settings: dict[str, Any], tmp: Path, exclude: set[int]) -> None:
        self.exclude = exclude
        self.settings_path = tmp / "gateway-settings.json"
        self.report_path = tmp / "gateway-report.json"
        self.settings_path.write_text(json.dumps(settings, default=_plain))
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.report: dict[str, Any] = {}

    async def __aenter__(self) -> GatewayProcess:
        command = [sys.executable, __file__, str(self.settings_path), str(self.report_path)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE)
        self.exclude.add(self.process.pid)
        ready = self.report_path.with_suffix(".url")
        deadline = time.monotonic() + 60
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise SystemExit("the gateway process did not start")
            await asyncio.sleep(0.05)
        self.url = ready.read_text()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.close()
        if await asyncio.to_thread(self.process.wait, 120) != 0:
            raise SystemExit("the gateway process failed")
        self.report = json.loads(self.report_path.read_text())


if __name__ == "__main__":
    asyncio.run(serve_gateway(Path(sys.argv[1]), Path(sys.argv[2])))
