"""Contracts from the configured contract services: the service chains a target belongs to.

A request names its contract (the body's ``contract`` or ``x-ptx-contractURL``). The
contract is fetched only when its URL lies under one of the configured contract services,
on one injected ``httpx.AsyncClient``, and cached for a while. :func:`catalog_ids_for` is
the pure part: the ``serviceChains[].catalogId`` whose ``services`` include a target.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from ptx_chain_node.errors import Problem, PtxError


def catalog_ids_for(contract: Any, target_id: str) -> list[str]:
    """The catalogIds of the contract's service chains whose services include ``target_id``."""
    if not isinstance(contract, dict):
        return []
    found: list[str] = []
    for chain in contract.get("serviceChains") or []:
        if not isinstance(chain, dict) or not isinstance(chain.get("catalogId"), str):
            continue
        services = chain.get("services") or []
        for service in services if isinstance(services, list) else []:
            uri = service.get("service") if isinstance(service, dict) else service
            if uri == target_id:
                found.append(chain["catalogId"])
                break
    return found


def under(url: str, bases: list[str]) -> bool:
    """True when ``url`` lies under one of ``bases`` (same origin, path prefix)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return False
    for base in bases:
        allowed = httpx.URL(base)
        same = (parsed.scheme, parsed.host, parsed.port) == (
            allowed.scheme,
            allowed.host,
            allowed.port,
        )
        if same and parsed.path.startswith(allowed.path.rstrip("/") + "/"):
            return True
        if same and parsed.path == allowed.path:
            return True
    return False


class ContractClient:
    """Fetches contracts from the configured services and caches them for ``ttl`` seconds."""

    def __init__(
        self, http: httpx.AsyncClient, services: list[str], *, ttl: float, timeout: float
    ) -> None:
        self.http = http
        self.services = list(services)
        self.ttl = ttl
        self.timeout = timeout
        self._cache: dict[str, tuple[float, Any]] = {}

    def allowed(self, url: str) -> bool:
        """True when ``url`` is under a configured contract service."""
        return under(url, self.services)

    async def contract(self, url: str) -> Any:
        """The contract at ``url`` (cached); PtxError when it is not allowed or not available."""
        if not self.allowed(url):
            message = "the contract is not under a configured contract service"
            raise PtxError(message, 422, [Problem("body.contract", message)])
        cached = self._cache.get(url)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            response = await self.http.get(url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            message = f"contract service unreachable: {type(exc).__name__}"
            raise PtxError(message, 503, [Problem("body.contract", message)]) from None
        if response.status_code != 200:
            message = f"contract service answered {response.status_code}"
            status = 422 if response.status_code == 404 else 503
            raise PtxError(message, status, [Problem("body.contract", message)])
        try:
            document = response.json()
        except ValueError:
            message = "the contract is not JSON"
            raise PtxError(message, 502, [Problem("body.contract", message)]) from None
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[url] = (now + self.ttl, document)
        return document
