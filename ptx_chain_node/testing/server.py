"""Run an ASGI app under a real uvicorn on 127.0.0.1, on an ephemeral port.

Two ways, both with clean shutdown:

- :func:`serve`, an async context manager running uvicorn **in the current event loop**
  (recommended in async tests: the app may share loop-bound objects such as an
  ``httpx.AsyncClient`` with the test)::

      async with serve(app) as server:
          r = await client.get(server.url + "/health")
          await server.stop()     # now connections are refused
          await server.start()    # same port again

- :class:`ServerThread`, a sync context manager running uvicorn in a background thread with
  its own event loop (for sync tests or apps that must not share the test's loop)::

      with ServerThread(app) as server:
          httpx.get(server.url + "/health")

uvicorn's signal handlers are not installed, so Ctrl-C still stops the test run.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn

HOST = "127.0.0.1"


class _Server(uvicorn.Server):
    """uvicorn without signal capture (the test runner keeps its Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _config(app: Any, lifespan: str, sock: socket.socket) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=HOST,
        port=sock.getsockname()[1],
        lifespan=lifespan,  # type: ignore[arg-type]
        log_level="warning",
        access_log=False,
        ws="none",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=5,
    )


class LiveServer:
    """An ASGI app under uvicorn in the current loop; ``url`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, app: Any, *, port: int = 0, lifespan: str = "auto") -> None:
        self.app = app
        self.port = port
        self.lifespan = lifespan
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, timeout: float = 10.0) -> None:
        """Start (or start again, on the same port once one was chosen)."""
        if self.running:
            return
        sock = _bind(self.port)
        self.port = sock.getsockname()[1]
        server = _Server(_config(self.app, self.lifespan, sock))
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + timeout
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop accepting, finish in-flight requests, shut down."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._server, self._task = None, None


@contextlib.asynccontextmanager
async def serve(app: Any, *, port: int = 0, lifespan: str = "auto") -> AsyncIterator[LiveServer]:
    """Serve ``app`` on 127.0.0.1 for the duration of the block."""
    server = LiveServer(app, port=port, lifespan=lifespan)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class ServerThread:
    """An ASGI app under uvicorn in a background thread (own event loop)."""

    def __init__(self, app: Any, *, port: int = 0, lifespan: str = "auto") -> None:
        self.app = app
        self.port = port
        self.lifespan = lifespan
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        sock = _bind(self.port)
        self.port = sock.getsockname()[1]
        server = _Server(_config(self.app, self.lifespan, sock))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                sock.close()
                raise RuntimeError("uvicorn stopped during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server, self._thread = None, None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
