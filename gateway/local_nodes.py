"""Local MPyC compute nodes for ``ptx-chain-node serve`` (one machine, one operator).

:class:`LocalNodes` starts ``count`` ``ptx-chain-node node`` processes on 127.0.0.1 with
free HTTP and MPyC ports, a token secret shared with this process and a data directory
each; they exit with the process that started them (``--parent-pid``). This mode gives
correct results but **no confidentiality**, and says so at start-up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import structlog

from ptx_chain_node.mpc.deployment import LOCAL_MODE_WARNING, MpycSettings, NodeSpec
from ptx_chain_node.mpc.runner import free_ports

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"


class LocalNodes:
    """``count`` node processes on this machine (sync API: the CLI runs it around uvicorn)."""

    def __init__(
        self,
        count: int,
        data_dir: Path,
        *,
        token_secret: str | None = None,
        threshold: int | None = None,
        run_timeout: float = 120.0,
        retain_shares: bool = False,
        ssl_dir: Path | None = None,
        python: str = sys.executable,
        log_dir: Path | None = None,
    ) -> None:
        self.count = count
        self.data_dir = data_dir
        self.token_secret = token_secret or secrets.token_urlsafe(32)
        self.threshold = threshold
        self.run_timeout = run_timeout
        self.retain_shares = retain_shares
        self.ssl_dir = ssl_dir
        self.python = python
        self.log_dir = log_dir  # None: the nodes log to this process's stdout/stderr
        ports = free_ports(2 * count)
        self.http_ports, self.mpc_ports = ports[:count], ports[count:]
        self.processes: list[subprocess.Popen[bytes]] = []

    @classmethod
    def from_settings(cls, settings: MpycSettings, instance: str = "") -> LocalNodes:
        """Nodes of ``settings``; ``instance`` (e.g. the gateway's port) names their data dir."""
        secret = settings.token_secret
        data_dir = Path(settings.local_data_dir)
        return cls(
            settings.local_nodes,
            data_dir / instance if instance else data_dir,
            token_secret=secret.get_secret_value() if secret else None,
            threshold=settings.threshold,
            run_timeout=settings.run_timeout,
            retain_shares=settings.retain_shares,
        )

    def specs(self) -> list[NodeSpec]:
        """The nodes as the engine's settings name them."""
        return [
            NodeSpec(url=f"http://{HOST}:{h}", mpc_address=f"{HOST}:{p}")
            for h, p in zip(self.http_ports, self.mpc_ports, strict=True)
        ]

    def settings(self, base: MpycSettings) -> MpycSettings:
        """``base`` pointing at these nodes, with their token secret."""
        from pydantic import SecretStr

        return base.model_copy(
            update={"nodes": self.specs(), "token_secret": SecretStr(self.token_secret)}
        )

    def argv(self, index: int) -> list[str]:
        parties = ",".join(f"{HOST}:{p}" for p in self.mpc_ports)
        argv = [
            self.python,
            "-m",
            "gateway",
            "node",
            "--index",
            str(index),
            "--parties",
            parties,
            "--http-port",
            str(self.http_ports[index]),
            "--data-dir",
            str(self.data_dir / f"node{index}"),
            "--run-timeout",
            str(self.run_timeout),
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.threshold is not None:
            argv += ["--threshold", str(self.threshold)]
        if self.retain_shares:
            argv.append("--retain-shares")
        if self.ssl_dir is not None:
            argv += ["--ssl", str(self.ssl_dir)]
        return argv

    def start(self) -> None:
        """Start the node processes (they become ready within a second or two)."""
        log.warning("mpyc.local_nodes", nodes=self.count, detail=LOCAL_MODE_WARNING)
        self.processes = [self._spawn(index) for index in range(self.count)]

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PTX_NODE_TOKEN_SECRET": self.token_secret}
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"node{index}.log").open("ab")
        # Its own process group: stopping a node also stops the MPyC party it runs.
        try:
            return subprocess.Popen(
                self.argv(index),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT if output is not None else None,
                start_new_session=True,
            )
        finally:
            if output is not None:
                output.close()  # the child keeps its own descriptor

    def kill_node(self, index: int) -> None:
        """Kill node ``index`` and its party process at once (SIGKILL to its group)."""
        process = self.processes[index]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def restart_node(self, index: int) -> None:
        """Start node ``index`` again on the same ports and data directory."""
        if self.processes[index].poll() is None:
            self.kill_node(index)
        self.processes[index] = self._spawn(index)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until every node answers ``/health`` (RuntimeError at the time limit)."""
        deadline = time.monotonic() + timeout
        pending = set(range(self.count))
        with httpx.Client(timeout=1.0) as http:
            while pending and time.monotonic() < deadline:
                for index in sorted(pending):
                    with contextlib.suppress(httpx.TransportError):
                        url = f"http://{HOST}:{self.http_ports[index]}/health"
                        if http.get(url).status_code == 200:
                            pending.discard(index)
                if pending:
                    time.sleep(0.1)
        if pending:
            raise RuntimeError(f"local nodes {sorted(pending)} not ready within {timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the nodes (kill those that do not exit within ``timeout``)."""
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
