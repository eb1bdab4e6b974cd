"""The data threads of a chain step as the input parties of its collaborations (pure).

The origin (or the only) thread is the provider's party; each ``additionalData`` entry is
its participant's party, found by participant id, else by name. An additional thread of an
unlisted participant is refused unless the configuration accepts unlisted participants
(its party id is then derived from the participant). Two threads may not be one party.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ptx_chain_node.chains.config import ChainConfig, ThreadParty
from ptx_chain_node.errors import Problem
from ptx_chain_node.payload import DataThread

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


@dataclass(frozen=True)
class PartyThread:
    """One thread bound to its input party; ``where`` locates it in the request body."""

    party: ThreadParty
    thread: DataThread
    where: str


def location(thread: DataThread) -> str:
    """Where a thread's data is in the body (for problems)."""
    if thread.role == "origin":
        return "body.data.origin"
    if thread.role == "additional":
        return f"body.data.additionalData[{thread.index}].data"
    return "body.data"


def _listed(config: ChainConfig, thread: DataThread) -> ThreadParty | None:
    participant = thread.participant
    if participant is None:
        return None
    additional = [p for p in config.parties if p.thread == "additional"]
    for party in additional:
        if party.participant_id is not None and party.participant_id == participant.id:
            return party
    for party in additional:
        if party.participant_name is not None and party.participant_name == participant.name:
            return party
    return None


def _derived(thread: DataThread) -> ThreadParty | None:
    participant = thread.participant
    raw = (participant.id or participant.name) if participant is not None else None
    if not raw:
        return None
    party_id = _UNSAFE.sub("-", raw).strip("-.")[:100] or None
    if party_id is None or not party_id[0].isalnum():
        return None
    return ThreadParty(
        id=party_id, thread="additional", participant_id=participant.id if participant else None
    )


def assign(
    config: ChainConfig, threads: list[DataThread]
) -> tuple[list[PartyThread], list[Problem]]:
    """Each thread with its party, and the problems (unknown or repeated participants)."""
    bound: list[PartyThread] = []
    problems: list[Problem] = []
    for thread in threads:
        where = location(thread)
        if thread.role in ("origin", "data"):
            party: ThreadParty | None = config.origin_party()
        else:
            party = _listed(config, thread)
            if party is None and config.accept_unlisted:
                party = _derived(thread)
        if party is None:
            field = f"body.data.additionalData[{thread.index}].participant"
            problems.append(Problem(field, "not an input party of this chain configuration"))
            continue
        if any(b.party.id == party.id for b in bound):
            problems.append(Problem(where, f"a second thread of input party '{party.id}'"))
            continue
        if party.id in {p.id for p in config.external_parties}:
            problems.append(Problem(where, f"'{party.id}' is an external party"))
            continue
        bound.append(PartyThread(party, thread, where))
    return bound, problems
