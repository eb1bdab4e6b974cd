"""An httpx transport that sends each request to an in-process ASGI app chosen by host.

Lets several ASGI apps (simulated PDCs, a gateway, a test resource) talk to each other
without sockets, through one ``httpx.AsyncClient``::

    transport = HostRoutingTransport({"pdc.test": pdc, "resource.test": resource_app})
    async with httpx.AsyncClient(transport=transport) as client:
        pdc = SimulatedPDC(PDCConfig(base_url="http://pdc.test"), client=client)

A host with no app raises ``httpx.ConnectError``, as a refused connection would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class HostRoutingTransport(httpx.AsyncBaseTransport):
    """Dispatch on ``request.url.host`` (with or without ``:port``) to ASGI apps."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        self._transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    def add(self, host: str, app: Any) -> None:
        """Route ``host`` to ``app`` from now on."""
        self._transports[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        with_port = f"{host}:{request.url.port}" if request.url.port else host
        transport = self._transports.get(with_port) or self._transports.get(host)
        if transport is None:
            raise httpx.ConnectError(f"no in-process app for {with_port}", request=request)
        return await transport.handle_async_request(request)
