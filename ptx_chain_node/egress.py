"""Outbound calls go only to configured hosts: an httpx transport that enforces it."""

from __future__ import annotations

from collections.abc import Iterable

import httpx


class EgressDenied(httpx.TransportError):
    """A request to a host that is not in the allow-list."""


def origin_of(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.scheme, parsed.host, port


class AllowedHostsTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and refuses any request whose origin was not configured."""

    def __init__(self, allowed: Iterable[str], transport: httpx.AsyncBaseTransport | None = None):
        self.allowed = {origin_of(url) for url in allowed}
        self.transport = transport or httpx.AsyncHTTPTransport()

    def allow(self, url: str) -> None:
        """Add one more origin (e.g. a compute node named in a collaboration's config)."""
        self.allowed.add(origin_of(url))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if origin_of(request.url) not in self.allowed:
            raise EgressDenied(
                f"outbound call to {request.url.host} is not configured", request=request
            )
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self.transport.aclose()
