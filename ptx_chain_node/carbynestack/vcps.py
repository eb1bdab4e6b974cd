"""The VCPs of one Carbyne Stack cloud: calls to one or all of them, and their failures.

Every call carries ``Authorization: Bearer <token>`` (one token for all VCPs, or one per
provider id) and runs under a deadline, whatever the transport. Failures name the VCP at
fault; a call to every VCP fails with one error listing them all. Tokens never reach logs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx

from ptx_chain_node.carbynestack.config import ComputeConfig, Provider
from ptx_chain_node.errors import AuthError, Problem, ProtocolError, PtxError

T = TypeVar("T")


class VcpError(PtxError):
    """A VCP could not be reached, timed out or answered with an error (502/504)."""


class IntegrityError(VcpError):
    """Shares failed the ``w = s·r`` / ``u = v·r`` check: a VCP is faulty or cheating."""


class Vcps:
    """Requests to the VCPs of ``config`` through one injected ``httpx.AsyncClient``.

    ``token`` is the bearer token for every VCP, or a mapping provider id -> token;
    ``timeout`` bounds each call unless the call gives its own.
    """

    def __init__(
        self,
        config: ComputeConfig,
        http: httpx.AsyncClient,
        token: str | Mapping[int, str],
        *,
        timeout: float = 30.0,
    ) -> None:
        self.providers = config.providers
        self.http = http
        if isinstance(token, str):
            self.tokens = {p.id: token for p in config.providers}
        else:
            missing = [p.id for p in config.providers if not token.get(p.id)]
            if missing:
                raise ProtocolError.single("token", f"no bearer token for providers {missing}")
            self.tokens = {p.id: token[p.id] for p in config.providers}
        if any(not t for t in self.tokens.values()):
            raise ProtocolError.single("token", "bearer token must not be empty")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"Vcps(providers={[p.id for p in self.providers]}, token=***)"

    async def call(
        self,
        provider: Provider,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One request to one VCP, with its token, under ``timeout`` (default: :attr:`timeout`).

        Raises :class:`VcpError` (502, or 504 for no answer) naming the VCP, or
        :class:`AuthError` when it refuses the token.
        """
        response = await self._send(provider, method, url, params, json, timeout)
        _check(provider, method, url, response)
        return response

    async def get_if_present(self, provider: Provider, url: str) -> httpx.Response | None:
        """A GET at one VCP as :meth:`call` makes it, but None when the VCP answers 404."""
        response = await self._send(provider, "GET", url, None, None, None)
        if response.status_code == 404:
            return None
        _check(provider, "GET", url, response)
        return response

    async def _send(
        self,
        provider: Provider,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        json: Any,
        timeout: float | None,
    ) -> httpx.Response:
        limit = self.timeout if timeout is None else timeout
        headers = {"Authorization": f"Bearer {self.tokens[provider.id]}"}
        try:
            async with asyncio.timeout(limit):
                return await self.http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=httpx.Timeout(limit),
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise vcp_problem(provider, f"no answer within {limit:g} s", 504) from exc
        except httpx.TransportError as exc:
            raise vcp_problem(provider, f"unreachable ({type(exc).__name__})") from exc

    async def on_all(self, call: Callable[[Provider], Awaitable[T]]) -> list[T]:
        """``call`` at every VCP concurrently; one error listing every VCP that failed."""
        providers = self.providers
        results = await asyncio.gather(*(call(p) for p in providers), return_exceptions=True)
        failures = [
            (p, r) for p, r in zip(providers, results, strict=True) if isinstance(r, BaseException)
        ]
        for _, exc in failures:
            if not isinstance(exc, PtxError):
                raise exc
        if failures:
            errors = [exc for _, exc in failures if isinstance(exc, PtxError)]
            refused = [e for e in errors if isinstance(e, AuthError)]
            if refused:
                raise AuthError("; ".join(e.message for e in refused))
            problems = [prob for e in errors for prob in e.problems]
            status = 504 if all(e.status == 504 for e in errors) else 502
            head = errors[0] if len(errors) == 1 else None
            message = (
                head.message
                if head
                else f"{len(errors)} VCPs failed: " + "; ".join(e.message for e in errors)
            )
            cls = IntegrityError if all(isinstance(e, IntegrityError) for e in errors) else VcpError
            raise cls(message, status, problems)
        return [r for r in results if not isinstance(r, BaseException)]


def vcp_problem(provider: Provider, problem: str, status: int = 502) -> VcpError:
    """The error for ``problem`` at one VCP, naming it."""
    return VcpError(
        f"VCP {provider.id}: {problem}", status, [Problem(f"providers[{provider.id}]", problem)]
    )


def _check(provider: Provider, method: str, url: str, response: httpx.Response) -> None:
    """Raise the error for a refused token or an unsuccessful answer."""
    if response.status_code in (401, 403):
        raise AuthError(f"VCP {provider.id} refused the bearer token ({response.status_code})")
    if not response.is_success:
        reason = _reason(response)
        raise vcp_problem(
            provider,
            f"{method} {httpx.URL(url).path} answered {response.status_code}"
            + (f": {reason}" if reason else ""),
        )


def _reason(response: httpx.Response) -> str:
    """The ``message`` of an error body, shortened (service messages carry no secrets)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:200] if message else ""


def answer_json(provider: Provider, response: httpx.Response) -> Any:
    """A VCP's answer as JSON (a :class:`VcpError` when it is not)."""
    try:
        return response.json()
    except ValueError as exc:
        raise vcp_problem(provider, "answer is not JSON") from exc
