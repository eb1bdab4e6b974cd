"""One party's client service (upstream's API), transport-free: upload, result, notify.

Upstream's party client service answers ``POST /secrets/{cid}/{pid}`` (a CSV with a header
line, then one integer per line), ``GET /result/{cid}/{pid}`` and ``PUT /notify``. This is
the same service for one party of our coordinator, on its own machine:

- :meth:`ClientService.upload` reads the CSV against the collaboration's input
  specification (the collaboration's typed columns, or upstream's single column under any
  header when the specification has exactly one column), then shares, uploads and confirms
  exactly as ``ptx-chain-node client upload`` does (:class:`.party_client.PartyClient`, on
  the collaboration's engine: Shamir shares to the MPyC nodes, or one masked secret per
  column at every Carbyne Stack VCP); it answers the secret ids. Plaintext never leaves this
  process, and nothing is confirmed unless the upload succeeded.
- :meth:`ClientService.result` reconstructs the result here: from ``t + 1`` or more result
  shares of the MPyC nodes, or from the result secrets read and checked at every VCP;
  404/409 while there is none.
- :meth:`ClientService.notify` checks the coordinator's ``x-ptx-signature`` HMAC when a
  notify secret is configured and remembers the result ids per collaboration.

The party's coordinator token and VCP token stay in memory (never logged, never in
``repr``). The service acts for its one party: another party id in a path is refused (403).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from ptx_chain_node.carbynestack.coordinated_party import VcpToken
from ptx_chain_node.coordination.collaboration import InputSpec
from ptx_chain_node.coordination.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from ptx_chain_node.errors import AuthError, NotFoundError, Problem, PtxError
from ptx_chain_node.mpc.party_client import PartyClient
from ptx_chain_node.mpc.rows import Columns, parse_csv

MAX_CSV_BYTES = 32 * 1024 * 1024


def parse_data_csv(spec: InputSpec, text: str) -> Columns:
    """Typed columns of upstream's ``data_csv`` (or of a CSV with the spec's own columns).

    With a single-column specification, a one-column CSV is read as that column whatever
    its header says (upstream's header is free text). Errors name the row and the line.
    """
    text = text.lstrip("\ufeff")
    first, newline, rest = text.partition("\n")
    header = next(csv.reader(io.StringIO(first)), [])
    names = [c.name for c in spec.columns]
    if len(names) == 1 and len(header) == 1 and header[0].strip() != names[0]:
        text = names[0] + newline + rest
    if not newline and not first.strip():
        raise PtxError("data_csv is empty", 422, [Problem("data_csv", "no header line")])
    return parse_csv(spec, text)


@dataclass
class Notice:
    """What the coordinator said about one collaboration's end."""

    collaboration_id: str
    code: int
    message: str
    result_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "collaboration_id": self.collaboration_id,
            "code": self.code,
            "message": self.message,
            "result_ids": self.result_ids,
        }


def parse_notice(body: bytes, path_cid: str | None = None) -> Notice:
    """Upstream's notify body ``{message, code, collaborationId, secretId}`` (+ ``secretIds``)."""
    try:
        doc = json.loads(body)
    except ValueError:
        raise PtxError("notify body is not JSON", 400, [Problem("body", "not JSON")]) from None
    if not isinstance(doc, dict):
        raise PtxError("notify body must be an object", 422, [Problem("body", "not an object")])
    cid = doc.get("collaborationId", path_cid)
    if cid is None or isinstance(cid, bool) or not isinstance(cid, str | int):
        raise PtxError("collaborationId missing", 422, [Problem("collaborationId", "required")])
    if path_cid is not None and str(cid) != path_cid:
        message = "collaborationId differs from the path"
        raise PtxError(message, 422, [Problem("collaborationId", message)])
    ids = doc.get("secretIds")
    if not isinstance(ids, list):
        single = doc.get("secretId")
        ids = [single] if single is not None else []
    if not all(isinstance(i, str) for i in ids):
        raise PtxError("secret ids must be strings", 422, [Problem("secretIds", "not strings")])
    code = doc.get("code", 200)
    if not isinstance(code, int) or isinstance(code, bool):
        raise PtxError("code must be an integer", 422, [Problem("code", "not an integer")])
    return Notice(str(cid), code, str(doc.get("message", "")), list(ids))


class ClientService:
    """The client service of party ``party_id`` at the coordinator ``coordinator_url``."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        coordinator_url: str,
        party_id: str,
        token: str,
        *,
        notify_secret: str | None = None,
        approve: bool = False,
        timeout: float = 60.0,
        vcp_token: VcpToken | None = None,
    ) -> None:
        self.http = http
        self.party_id = party_id
        self.approve = approve
        self._party = PartyClient(
            http, coordinator_url, token, vcp_token=vcp_token, timeout=timeout
        )
        self._notify_secret = notify_secret
        self.notices: dict[str, Notice] = {}

    def __repr__(self) -> str:
        url = self._party.coordinator.url
        return f"ClientService(party_id={self.party_id!r}, coordinator={url!r})"

    def _check_party(self, party_id: str) -> None:
        if party_id != self.party_id:
            message = f"this client service acts for party '{self.party_id}' only"
            raise PtxError(message, 403, [Problem("path.pid", message)])

    async def upload(self, collaboration_id: str, party_id: str, data_csv: str) -> list[str]:
        """Validate, share, upload and confirm ``data_csv``; the secret ids."""
        self._check_party(party_id)
        view = await self._party.collaboration(collaboration_id)
        spec = InputSpec.model_validate(view["input_specification"])
        columns = parse_data_csv(spec, data_csv)
        receipt = await self._party.upload(
            collaboration_id, party_id, columns, approve=self.approve, view=view
        )
        return list(receipt["secret_ids"])

    async def result(self, collaboration_id: str, party_id: str) -> dict[str, Any]:
        """The reconstructed result (404 unknown or not started, 409 running or failed)."""
        self._check_party(party_id)
        notice = self.notices.get(collaboration_id)
        if notice is not None and notice.code >= 300:
            message = f"the collaboration ended without a result: {notice.message}"
            raise PtxError(message, 409, [Problem("collaboration", message)])
        return await self._party.result(collaboration_id, party_id)

    def notify(
        self, body: bytes, headers: dict[str, str], path_cid: str | None = None
    ) -> dict[str, Any]:
        """Check the signature (when a secret is set) and remember the notice."""
        if self._notify_secret is not None:
            signature = headers.get(SIGNATURE_HEADER)
            timestamp = headers.get(TIMESTAMP_HEADER)
            if signature is None or timestamp is None:
                raise AuthError("signed notification required (x-ptx-signature)")
            if not verify_signature(self._notify_secret, timestamp, body, signature):
                raise AuthError("bad or stale notification signature")
        notice = parse_notice(body, path_cid)
        self.notices[notice.collaboration_id] = notice
        return notice.as_dict()

    def notice(self, collaboration_id: str) -> Notice:
        """The notice remembered for ``collaboration_id`` (404 when none came)."""
        found = self.notices.get(collaboration_id)
        if found is None:
            raise NotFoundError("no notification for this collaboration", "path.cid")
        return found
