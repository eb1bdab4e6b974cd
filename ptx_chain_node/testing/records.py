"""What a :class:`~ptx_chain_node.testing.pdc.SimulatedPDC` saw and did, for tests to read.

Every list on the PDC (``resource_calls``, ``resumes``, ``outputs``, ``data_requests``,
``errors``) holds these records in arrival order. Header names are kept **as sent or
received** (the PDC's mixed case on outbound calls); look them up with ``header()``,
which ignores case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

JsonValue = Any


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


class ResumeOutcome(StrEnum):
    """What the PDC did with one ``/service-chain/resume`` call (or adapter self-resume)."""

    RESUMED = "resumed"  # the node was suspended: resumed and data forwarded
    DUPLICATE = "duplicate"  # the node was already resumed: forwarded again (not idempotent)
    DROPPED_EARLY = "dropped_early"  # the node was not suspended yet: 200, silently dropped
    UNKNOWN = "unknown"  # no such chain or step here: 200, nothing done
    STATUS_REPORT = "status_report"  # hostURI other than "local": a status report, 200
    ERROR = "error"  # an exception: 500 (e.g. the chain was lost in a restart)
    TOO_LARGE = "too_large"  # body over the limit: 413
    BAD_REQUEST = "bad_request"  # body not JSON: 400, as the PDC's body parser answers


class StepState(StrEnum):
    """State of one chain step hosted by a simulated PDC."""

    PENDING = "pending"  # handed to this PDC, resource not called yet (pre-chain fetch)
    CALLING = "calling"  # resource call in flight
    CALLED = "called"  # resource answered; the PDC does its DB work before suspending
    SUSPENDED = "suspended"  # waiting for a resume
    RESUMED = "resumed"  # resumed at least once; data forwarded
    CONTINUED = "continued"  # an early resume was dropped: chain went on with the ACK body
    DELIVERED = "delivered"  # final node: the output was delivered
    FAILED = "failed"  # the resource could not be reached


@dataclass
class ResourceCall:
    """One call of a chain resource by the PDC."""

    chain_id: str
    target_id: str
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: JsonValue
    raw_body: bytes
    status: int | None = None
    response: JsonValue = None
    error: str | None = None
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        """The value sent for ``name`` (case-insensitive), or None."""
        return _header(self.headers, name)


@dataclass
class ResumeRecord:
    """One resume the PDC received (``via="http"``) or did itself (``via="adapter"``)."""

    chain_id: str | None
    target_id: str | None
    data: JsonValue
    params: JsonValue
    outcome: ResumeOutcome
    status: int = 200
    host_uri: str | None = None
    via: str = "http"
    error: str | None = None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Output:
    """What the final node of a chain received."""

    chain_id: str
    target_id: str
    body: JsonValue
    headers: list[tuple[str, str]]
    at: float = field(default_factory=time.monotonic)

    @property
    def data(self) -> JsonValue:
        """The ``data`` of the wrapper (or the bare body under skipBodyProcessing)."""
        if isinstance(self.body, dict) and "data" in self.body:
            return self.body["data"]
        return self.body

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


@dataclass
class DataRequest:
    """A GET on this PDC's data-resource route (``/data/<name>``), as a provider."""

    name: str
    headers: list[tuple[str, str]]
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)
