"""A party's HTTP client of the coordinator's native API, on one injected httpx client.

Only what an input or output party's client needs: the collaboration, the compute plan,
its node token, the upload confirmation and the result ids. The party's own bearer token
goes with every call; error answers become :class:`PtxError` with the coordinator's
message and problems.
"""

from __future__ import annotations

from typing import Any

import httpx

from ptx_chain_node.coordination.records import Role
from ptx_chain_node.errors import Problem, PtxError


class CoordinatorClient:
    """Calls to the coordinator at ``url`` as one party (``token``)."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str, timeout: float = 30.0):
        self.http = http
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self.http.request(
                method,
                f"{self.url}/v1/collaborations/{path}",
                json=body,
                headers={"authorization": f"Bearer {self._token}"},
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            message = f"coordinator {self.url} is unreachable: {type(exc).__name__}"
            raise PtxError(message, 503, [Problem("coordinator", message)]) from None
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.status_code >= 400:
            if isinstance(doc, dict) and "message" in doc:
                problems = [
                    Problem(str(p.get("field")), str(p.get("problem")))
                    for p in doc.get("errors") or []
                    if isinstance(p, dict)
                ]
                raise PtxError(f"coordinator: {doc['message']}", response.status_code, problems)
            raise PtxError(f"coordinator answered {response.status_code}", response.status_code)
        return doc

    async def collaboration(self, collaboration_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call("GET", collaboration_id)
        return doc

    async def compute_config(self, collaboration_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call("GET", f"{collaboration_id}/compute-config")
        return doc

    async def node_token(self, collaboration_id: str, role: Role, party_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call(
            "GET", f"{collaboration_id}/{role.value}-parties/{party_id}/node-token"
        )
        return doc

    async def confirm_upload(
        self,
        collaboration_id: str,
        party_id: str,
        secret_ids: list[str],
        rows: int,
        program_sha256: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"secret_ids": secret_ids, "rows": rows}
        if program_sha256 is not None:
            body["program_sha256"] = program_sha256
        doc: dict[str, Any] = await self._call(
            "POST", f"{collaboration_id}/input-parties/{party_id}/upload", body
        )
        return doc

    async def results(self, collaboration_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = await self._call("GET", f"{collaboration_id}/results")
        return doc
