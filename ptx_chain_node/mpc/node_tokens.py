"""Tokens the coordinator issues for the MPyC compute nodes (HMAC, no state at the nodes).

The coordinator and every compute node share one secret (``token_secret``, at least 32
characters). A token is

    ptxn1.<claims>.<mac>

where ``claims`` is base64url (no padding) of compact JSON ``{"s": scope, "c":
collaboration id, "p": party id, "e": expiry (unix seconds)}`` and ``mac`` is base64url of
``HMAC-SHA256(secret, "ptxn1." + claims)``. Scopes:

- ``upload``: an input party ``p`` may upload share vectors for collaboration ``c``;
- ``result``: an output party ``p`` may read result shares of collaboration ``c``;
- ``coordinator``: the coordinator's own requests (runs, status, deletion); ``c`` is ``*``.

A node checks the MAC (constant time), the expiry, the scope and the collaboration (and
for uploads that the party in the request is the token's). Upload and result tokens are
handed to a party only by the coordinator, after it checked the party's own bearer token;
coordinator tokens live a few minutes and never leave the coordinator. Tokens never reach
a log line.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from enum import StrEnum

from ptx_chain_node.errors import AuthError, Problem, PtxError

PREFIX = "ptxn1"
MIN_SECRET_LENGTH = 32
ANY_COLLABORATION = "*"


class Scope(StrEnum):
    """What a token allows."""

    UPLOAD = "upload"
    RESULT = "result"
    COORDINATOR = "coordinator"


@dataclass(frozen=True)
class Claims:
    """The verified content of a token."""

    scope: Scope
    collaboration_id: str
    party_id: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class NodeTokens:
    """Issues and verifies node tokens with one shared secret."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LENGTH:
            raise PtxError(
                "the node token secret is too short",
                500,
                [Problem("token_secret", f"at least {MIN_SECRET_LENGTH} characters")],
            )
        self._key = secret.encode()

    def _mac(self, claims: str) -> str:
        signed = f"{PREFIX}.{claims}".encode()
        return _b64(hmac.new(self._key, signed, hashlib.sha256).digest())

    def issue(
        self,
        scope: Scope,
        collaboration_id: str = ANY_COLLABORATION,
        party_id: str = "",
        ttl: float = 3600.0,
        now: float | None = None,
    ) -> str:
        """A token for ``scope`` on ``collaboration_id`` (and ``party_id``), valid ``ttl`` s."""
        expires = int((time.time() if now is None else now) + ttl)
        body = {"s": scope.value, "c": collaboration_id, "p": party_id, "e": expires}
        claims = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{PREFIX}.{claims}.{self._mac(claims)}"

    def verify(
        self,
        token: str | None,
        scope: Scope,
        collaboration_id: str | None = None,
        now: float | None = None,
    ) -> Claims:
        """The claims of a valid token for ``scope`` (and ``collaboration_id``); else 401."""
        if not token:
            raise AuthError("node bearer token required")
        prefix, _, rest = token.partition(".")
        claims_text, _, mac = rest.partition(".")
        if prefix != PREFIX or not claims_text or not mac:
            raise AuthError("malformed node token")
        if not hmac.compare_digest(mac, self._mac(claims_text)):
            raise AuthError("invalid node token")
        try:
            body = json.loads(_unb64(claims_text))
            claims = Claims(Scope(body["s"]), str(body["c"]), str(body["p"]), float(body["e"]))
        except (KeyError, TypeError, ValueError):
            raise AuthError("malformed node token") from None
        if claims.expires_at < (time.time() if now is None else now):
            raise AuthError("expired node token")
        if claims.scope is not scope:
            raise AuthError(f"a {scope.value} token is required")
        if collaboration_id is not None and claims.collaboration_id not in (
            collaboration_id,
            ANY_COLLABORATION if scope is Scope.COORDINATOR else None,
        ):
            raise AuthError("the token is for another collaboration")
        return claims
