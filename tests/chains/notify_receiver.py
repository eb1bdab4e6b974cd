"""An output party's client endpoint for tests: keeps the notifications whose signature holds.

Serve it with :func:`ptx_chain_node.testing.serve` and configure ``<url>/client`` as the
output party's endpoint: ``PUT /client/notify`` bodies signed with ``secret``
(``x-ptx-timestamp``, ``x-ptx-signature``) are kept in :attr:`Receiver.notices`; anything
else is answered 401 and counted in :attr:`Receiver.refused`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ptx_chain_node.coordination.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from ptx_chain_node.testing.asgi import Receive, Scope, Send, read_body, send_json


@dataclass
class Receiver:
    """A pure-ASGI notification receiver checking the HMAC with ``secret``."""

    secret: str
    notices: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(scope, receive, 1 << 20)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        signed = verify_signature(
            self.secret,
            headers.get(TIMESTAMP_HEADER, ""),
            body,
            headers.get(SIGNATURE_HEADER, ""),
        )
        if scope["method"] != "PUT" or scope["path"] != "/client/notify" or not signed:
            self.refused += 1
            await send_json(send, 401, {"message": "unsigned or misdirected"})
            return
        self.notices.append(json.loads(body))
        await send_json(send, 200, {})

    async def wait(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The notifications once ``count`` arrived (or as they are at ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.notices) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.notices
