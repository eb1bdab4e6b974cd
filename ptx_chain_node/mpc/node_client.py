"""The HTTP client of one compute node, on one injected ``httpx.AsyncClient``.

Used by the coordinator's engine (runs, status, share facts, deletion: coordinator tokens)
and by party clients (share uploads with an upload token, result shares with a result
token). Connection failures and timeouts become :class:`NodeUnavailable` (503) naming the
node; error answers become :class:`PtxError` with the node's message and problems.
"""

from __future__ import annotations

from typing import Any

import httpx

from ptx_chain_node.errors import Problem, PtxError


class NodeUnavailable(PtxError):
    """The node did not answer (down, unreachable or too slow)."""

    def __init__(self, index: int, url: str, reason: str) -> None:
        message = f"node {index} ({url}) is unreachable: {reason}"
        super().__init__(message, 503, [Problem(f"nodes[{index}]", message)])


class NodeClient:
    """Calls to compute node ``index`` at ``url``."""

    def __init__(self, http: httpx.AsyncClient, url: str, index: int, timeout: float = 10.0):
        self.http = http
        self.url = url.rstrip("/")
        self.index = index
        self.timeout = timeout

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        *,
        body: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        try:
            response = await self.http.request(
                method,
                self.url + path,
                json=body,
                headers={"authorization": f"Bearer {token}"},
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            raise NodeUnavailable(self.index, self.url, type(exc).__name__) from None
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code >= 400:
            try:
                doc = response.json()
                message = str(doc.get("message") or response.reason_phrase)
                problems = [Problem(str(p["field"]), str(p["problem"])) for p in doc["errors"]]
            except (ValueError, KeyError, TypeError, AttributeError):
                message, problems = response.reason_phrase or "error", []
            status = response.status_code if response.status_code < 500 else 502
            raise PtxError(f"node {self.index}: {message}", status, problems)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PtxError(
                f"node {self.index}: answer is not JSON", 502, [Problem("node", "not JSON")]
            ) from None

    async def health(self) -> dict[str, Any]:
        try:
            response = await self.http.get(self.url + "/health", timeout=self.timeout)
        except httpx.TransportError as exc:
            raise NodeUnavailable(self.index, self.url, type(exc).__name__) from None
        if response.status_code != 200:
            raise NodeUnavailable(self.index, self.url, f"health answered {response.status_code}")
        doc: dict[str, Any] = response.json()
        return doc

    # -- parties ---------------------------------------------------------------------------

    async def upload(
        self,
        token: str,
        secret_id: str,
        collaboration_id: str,
        party_id: str,
        shares: dict[str, Any],
    ) -> dict[str, Any]:
        """Upload this node's share vector (upload token)."""
        body = {"collaboration_id": collaboration_id, "party_id": party_id, "shares": shares}
        doc: dict[str, Any] = await self._call("PUT", f"/v1/shares/{secret_id}", token, body=body)
        return doc

    async def result(self, token: str, result_id: str) -> dict[str, Any]:
        """This node's result shares document (result token)."""
        doc: dict[str, Any] = await self._call("GET", f"/v1/results/{result_id}", token)
        return doc

    # -- coordinator -----------------------------------------------------------------------

    async def share_info(self, token: str, secret_id: str) -> dict[str, Any] | None:
        """Facts of a stored share vector, or None when the node does not hold it."""
        doc: dict[str, Any] | None = await self._call(
            "GET", f"/v1/shares/{secret_id}", token, missing_ok=True
        )
        return doc

    async def start_run(self, token: str, request: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call("POST", "/v1/runs", token, body=request)
        return doc

    async def run(self, token: str, run_id: str) -> dict[str, Any] | None:
        """The run at this node, or None when it does not know it."""
        doc: dict[str, Any] | None = await self._call(
            "GET", f"/v1/runs/{run_id}", token, missing_ok=True
        )
        return doc

    async def cancel(self, token: str, run_id: str) -> None:
        await self._call("POST", f"/v1/runs/{run_id}/cancel", token, missing_ok=True)

    async def delete(self, token: str, collaboration_id: str) -> None:
        await self._call("DELETE", f"/v1/collaborations/{collaboration_id}", token)
