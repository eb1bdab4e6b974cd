"""Bearer tokens: the operator's (configured) and each party's (issued once, stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from ptx_chain_node.errors import AuthError, Problem, PtxError

PARTY_TOKEN_PREFIX = "ptxp_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class IssuedToken:
    """A fresh token: ``value`` goes to the party once; only ``sha256`` is stored."""

    value: str = field(repr=False)
    sha256: str


def token_sha256(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_party_token() -> IssuedToken:
    """A new random party token (256 bits)."""
    value = PARTY_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return IssuedToken(value, token_sha256(value))


def new_notify_secret() -> str:
    """A new HMAC key for an output party's notifications."""
    return secrets.token_urlsafe(32)


def token_matches(token: str | None, sha256: str | None) -> bool:
    """True when ``token`` hashes to ``sha256`` (constant-time comparison)."""
    if not token or not sha256:
        return False
    return hmac.compare_digest(token_sha256(token), sha256)


class Forbidden(PtxError):
    """Authenticated, but not allowed to do this (HTTP 403)."""

    def __init__(self, message: str, field_name: str = "credentials") -> None:
        super().__init__(message, 403, [Problem(field_name, message)])


class OperatorGate:
    """Checks the operator token; with none configured every caller is the operator (dev)."""

    def __init__(self, token: str | None) -> None:
        self._sha256 = token_sha256(token) if token else None

    @property
    def open(self) -> bool:
        """True when no operator token is configured (development only)."""
        return self._sha256 is None

    def is_operator(self, token: str | None) -> bool:
        """True when ``token`` is the operator token (or none is configured)."""
        return self._sha256 is None or token_matches(token, self._sha256)

    def require(self, token: str | None) -> None:
        """Raise 401 unless ``token`` is the operator token."""
        if not self.is_operator(token):
            raise AuthError("operator bearer token required")
