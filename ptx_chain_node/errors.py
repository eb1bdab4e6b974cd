"""Errors the core raises, each carrying an HTTP-like status and the fields at fault."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: where (``field``) and what (``problem``)."""

    field: str
    problem: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


@dataclass
class PtxError(Exception):
    """Base error: a status code, a message and the problems behind it."""

    message: str
    status: int = 400
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message

    def as_body(self) -> dict[str, Any]:
        """The JSON error body: ``{"code", "message", "errors": [{"field", "problem"}]}``."""
        body: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.problems:
            body["errors"] = [p.as_dict() for p in self.problems]
        return body


class ProtocolError(PtxError):
    """A request that does not follow the service-chain protocol (headers or body)."""

    @classmethod
    def single(cls, field_name: str, problem: str, status: int = 400) -> ProtocolError:
        return cls(f"{field_name}: {problem}", status, [Problem(field_name, problem)])


class AuthError(PtxError):
    """Missing or wrong credentials."""

    def __init__(self, message: str = "authentication required") -> None:
        super().__init__(message, 401, [Problem("credentials", message)])


class NotFoundError(PtxError):
    """The addressed object does not exist."""

    def __init__(self, message: str, field_name: str = "id") -> None:
        super().__init__(message, 404, [Problem(field_name, message)])
