"""Collaboration states and their transitions, as pure functions.

``open -> ready -> running -> done | failed | expired``::

    open     registrations and uploads accepted; not enough confirmed uploads yet
    ready    enough confirmed uploads; waiting for the start conditions (every counted
             party approved the program hash, at least one output party)
    running  the engine computes; exactly one run (the store guards ready -> running)
    done     results available to the output parties
    failed   the run failed (or could not be resumed); output parties are told
    expired  the deadline passed before the collaboration could run

A party that withdraws its upload can move ``ready`` back to ``open``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ptx_chain_node.errors import Problem, PtxError


class CollabState(StrEnum):
    """Where a collaboration is in its life."""

    OPEN = "open"
    READY = "ready"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """True for ``done``, ``failed`` and ``expired``."""
        return self in TERMINAL


TERMINAL = frozenset({CollabState.DONE, CollabState.FAILED, CollabState.EXPIRED})
#: States in which parties may still register, upload or withdraw.
ACCEPTING = (CollabState.OPEN, CollabState.READY)

ALLOWED: dict[CollabState, frozenset[CollabState]] = {
    CollabState.OPEN: frozenset({CollabState.READY, CollabState.EXPIRED, CollabState.FAILED}),
    CollabState.READY: frozenset(
        {CollabState.OPEN, CollabState.RUNNING, CollabState.EXPIRED, CollabState.FAILED}
    ),
    CollabState.RUNNING: frozenset({CollabState.DONE, CollabState.FAILED}),
    CollabState.DONE: frozenset(),
    CollabState.FAILED: frozenset(),
    CollabState.EXPIRED: frozenset(),
}


class InvalidTransition(PtxError):
    """A state change the life cycle does not allow (HTTP 409)."""

    def __init__(self, current: CollabState, target: CollabState) -> None:
        message = f"collaboration is {current.value}; cannot become {target.value}"
        super().__init__(message, 409, [Problem("state", message)])


def transition(current: CollabState, target: CollabState) -> CollabState:
    """``target`` when the life cycle allows ``current -> target``; else InvalidTransition."""
    if target not in ALLOWED[current]:
        raise InvalidTransition(current, target)
    return target


def require_accepting(current: CollabState) -> None:
    """Raise 409 unless parties may still register, upload or withdraw."""
    if current not in ACCEPTING:
        message = f"collaboration is {current.value}; it no longer accepts parties or uploads"
        raise PtxError(message, 409, [Problem("state", message)])


@dataclass(frozen=True)
class Facts:
    """What the store knows about a collaboration's parties at one moment."""

    expected: int  # input parties that complete the collaboration
    min_parties: int  # the fewest a partial run accepts
    allow_partial_run: bool
    confirmed: int  # input parties with a confirmed upload
    approved: int  # of those, the ones that approved the current program hash
    outputs: int  # registered output parties
    deadline: float | None


def next_state(current: CollabState, facts: Facts, now: float) -> CollabState:
    """The state a collaboration should be in given ``facts`` at ``now`` (pure).

    Returns ``current`` when nothing changes. ``running`` means "start the run now" and is
    only returned from ``ready`` (the caller first moves ``open`` to ``ready``).
    """
    if current not in ACCEPTING:
        return current
    can_start = facts.outputs > 0 and facts.approved == facts.confirmed
    if facts.deadline is not None and now >= facts.deadline:
        partial_ok = (
            facts.allow_partial_run and facts.outputs > 0 and facts.approved >= facts.min_parties
        )
        if (facts.confirmed >= facts.expected and can_start) or partial_ok:
            return CollabState.RUNNING if current is CollabState.READY else CollabState.READY
        return CollabState.EXPIRED
    if facts.confirmed >= facts.expected:
        if can_start and current is CollabState.READY:
            return CollabState.RUNNING
        return CollabState.READY
    return CollabState.OPEN
