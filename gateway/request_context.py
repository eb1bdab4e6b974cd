"""Pure-ASGI middleware: a request id per request, bound into every log line."""

from __future__ import annotations

import itertools
import re
import secrets

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: Generated ids: a random prefix per process and a sequence number, 16 hex digits like
#: ``secrets.token_hex(8)`` but without a system call per request. They correlate log
#: lines and responses; they are not secrets.
_PREFIX = secrets.token_hex(4)
_SEQUENCE = itertools.count(1)


def new_request_id() -> str:
    """A request id unique within this process (and, by its random prefix, across them)."""
    return f"{_PREFIX}{next(_SEQUENCE) & 0xFFFFFFFF:08x}"


class RequestContextMiddleware:
    """Takes ``x-request-id`` (if sane) or makes one, binds it to structlog, echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_ID.match(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        # Under a server each request is a task with its own context; an in-process caller
        # (httpx.ASGITransport) shares the caller's, so the previous values come back after.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**tokens)
