"""Waiting for a collaboration to end or an upload to be confirmed.

A waiter is woken at once by what happens in this process (:meth:`Changes.ended`,
:meth:`Changes.changed`) and re-reads the store every ``recheck`` seconds for what other
processes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ptx_chain_node.coordination.access import CollaborationAccess
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.states import ACCEPTING, TERMINAL


class Changes:
    """Wake-ups for waiters on collaborations of this process."""

    def __init__(self, access: CollaborationAccess) -> None:
        self.access = access
        self._ended = asyncio.Event()
        self._changed = asyncio.Event()  # an upload confirmed or a collaboration ended

    def ended(self) -> None:
        """A collaboration ended (done, failed, expired): wake every waiter."""
        event, self._ended = self._ended, asyncio.Event()
        event.set()
        self.changed()

    def changed(self) -> None:
        """An upload was confirmed: wake the waiters for confirmations."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_ended(
        self, collaboration_id: str, timeout: float, *, recheck: float = 5.0
    ) -> CollaborationRecord:
        """The collaboration once it ended (done, failed, expired), or as it is at ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._ended
            record = await self.access.require(collaboration_id)
            remaining = deadline - time.monotonic()
            if record.state in TERMINAL or remaining <= 0:
                return record
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, recheck))

    async def wait_confirmed(
        self, collaboration_id: str, party_id: str, timeout: float, *, recheck: float = 5.0
    ) -> tuple[CollaborationRecord, PartyRecord | None]:
        """An input party once its upload is confirmed, with the collaboration.

        The party is None when the collaboration no longer accepts uploads without it, or
        at ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            event = self._changed
            record = await self.access.require(collaboration_id)
            party = await self.access.store.party(collaboration_id, Role.INPUT, party_id)
            if party is not None and party.confirmed_at is not None:
                return record, party
            remaining = deadline - time.monotonic()
            if record.state not in ACCEPTING or remaining <= 0:
                return record, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, recheck))
