"""What the store keeps beside a collaboration's definition: state, parties, notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.states import CollabState


class Role(StrEnum):
    """A party's role in a collaboration."""

    INPUT = "input"
    OUTPUT = "output"


@dataclass(frozen=True)
class CollaborationRecord:
    """A collaboration's definition with its current state and run."""

    definition: Collaboration
    state: CollabState
    updated_at: float
    run_id: str | None = None
    run_attempts: int = 0
    run_started_at: float | None = None
    result_ids: list[str] | None = None
    error: str | None = None
    finished_at: float | None = None
    lease_owner: str | None = None

    @property
    def id(self) -> str:
        return self.definition.id


@dataclass(frozen=True)
class PartyRecord:
    """An input or output party of one collaboration.

    Only the sha256 of the party's token is kept. ``notify_secret`` (output parties) is the
    HMAC key of signed notifications: it must be kept to sign, and never leaves the store
    except into a signature.
    """

    collaboration_id: str
    role: Role
    party_id: str
    token_sha256: str
    registered_at: float
    identity: str | None = None
    endpoint: str | None = None
    notify_secret: str | None = field(default=None, repr=False)
    approved_sha256: str | None = None
    secret_ids: list[str] | None = None
    rows: int | None = None
    confirmed_at: float | None = None

    def public(self) -> dict[str, Any]:
        """The party as listings show it (no token hash, secret or endpoint)."""
        body: dict[str, Any] = {
            "party_id": self.party_id,
            "role": self.role.value,
            "registered_at": self.registered_at,
        }
        if self.role is Role.INPUT:
            body.update(
                identity=self.identity,
                approved_sha256=self.approved_sha256,
                confirmed=self.confirmed_at is not None,
                rows=self.rows,
                confirmed_at=self.confirmed_at,
            )
        return body


class NotificationState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Notification:
    """One notification to one output party, retried until delivered or its deadline."""

    id: str
    collaboration_id: str
    party_id: str
    endpoint: str
    body: str
    state: NotificationState
    attempts: int
    deadline: float
    next_attempt_at: float
    created_at: float
    last_error: str | None = None
    delivered_at: float | None = None


@dataclass(frozen=True)
class NotificationAttempt:
    """One delivery attempt: when, the answer's status (if any) and the error (if any)."""

    notification_id: str
    attempt: int
    at: float
    duration: float
    status_code: int | None
    error: str | None
