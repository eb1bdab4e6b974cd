"""Real ``ptx-chain-node serve`` processes for tests: start, wait ready, kill, stop, logs.

A :class:`GatewayProcess` runs the console script on 127.0.0.1 with a config file and a
fixed port (kept across restarts), appending its stdout and stderr (structlog JSON lines)
to one log file. Every wait is bounded; waiting is async so a simulated PDC served in the
test's own event loop keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def console_script() -> str:
    """The ``ptx-chain-node`` executable of the running interpreter's environment."""
    beside = Path(sys.executable).parent / "ptx-chain-node"
    if beside.exists():
        return str(beside)
    found = shutil.which("ptx-chain-node")
    if found is None:
        raise RuntimeError("ptx-chain-node is not installed")
    return found


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML rendering for {value!r}")


def write_config(path: Path, settings: dict[str, Any]) -> Path:
    """Write ``settings`` (scalars and one level of tables) as a TOML file."""
    scalars = [f"{k} = {toml_value(v)}" for k, v in settings.items() if not isinstance(v, dict)]
    tables = []
    for name, table in settings.items():
        if isinstance(table, dict):
            tables.append(f"[{name}]")
            tables.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    path.write_text("\n".join(scalars + tables) + "\n")
    return path


class GatewayProcess:
    """One gateway, as the operator runs it: ``ptx-chain-node serve --config FILE``."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self.port = port or free_port()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Spawn the process (once the previous one, if any, has ended)."""
        if self.running:
            raise RuntimeError("already running")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log.open("ab") as out:
            out.write(f'{{"event": "test: spawn {self.starts}"}}\n'.encode())
            out.flush()
            self.process = subprocess.Popen(
                [
                    console_script(),
                    "serve",
                    "--config",
                    str(self.config),
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self.starts += 1

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Poll ``/readyz`` until 200; fail if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"gateway exited during start-up:\n{self.tail()}")
                try:
                    response = await client.get(self.url + "/readyz")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gateway not ready in {timeout} s:\n{self.tail()}")
                await asyncio.sleep(0.02)

    async def start_ready(self, timeout: float = 30.0) -> None:
        self.start()
        await self.wait_ready(timeout)

    async def _reap(self, timeout: float) -> int:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("gateway process did not end")
            await asyncio.sleep(0.01)
        self.process = None
        return code

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, no buffer is flushed, leases stay in the store."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills += 1
        await self._reap(10.0)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (graceful: uvicorn's shutdown, the app's lifespan); SIGKILL if it hangs."""
        if self.process is None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return await self._reap(timeout)
        except TimeoutError:
            await self.kill()
            raise

    def kill_now(self) -> None:
        """Synchronous last-resort clean-up (fixture teardown)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(10)
            self.process = None

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other output is skipped)."""
        parsed = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    parsed.append(json.loads(raw))
                except ValueError:
                    continue  # a line cut short by SIGKILL
        return parsed

    def tail(self, count: int = 30) -> str:
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-count:])
