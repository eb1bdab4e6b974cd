"""Parties joining a collaboration: registration, approval, upload confirmation, withdrawal.

Input parties register (themselves, or the operator for them), approve the program by its
hash and confirm their upload; output parties are registered by the operator. Each change
is written to the store, then the collaboration is advanced to the state it calls for.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from ptx_chain_node.coordination.access import CollaborationAccess
from ptx_chain_node.coordination.collaboration import check_endpoint
from ptx_chain_node.coordination.engine import PartyInput
from ptx_chain_node.coordination.party_store import AddOutcome
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.states import ACCEPTING, CollabState, require_accepting
from ptx_chain_node.coordination.tokens import Forbidden, issue_party_token, new_notify_secret
from ptx_chain_node.coordination.waiting import Changes
from ptx_chain_node.errors import NotFoundError, Problem, PtxError

log = structlog.get_logger(__name__)

#: Applies the state a collaboration's facts call for (:meth:`Coordinator.advance`).
Advance = Callable[[str], Awaitable[CollaborationRecord]]


@dataclass(frozen=True)
class Registration:
    """A party's registration; ``token`` (and a generated ``notify_secret``) only when new."""

    record: CollaborationRecord
    party: PartyRecord
    created: bool
    token: str | None = field(default=None, repr=False)
    notify_secret: str | None = field(default=None, repr=False)
    plan: dict[str, Any] = field(default_factory=dict)


class Enrolment:
    """The use cases of input and output parties (see :class:`Coordinator` for the callers)."""

    def __init__(self, access: CollaborationAccess, changes: Changes, advance: Advance) -> None:
        self.access = access
        self.store = access.store
        self.gate = access.gate
        self.changes = changes
        self.advance = advance

    async def register_input(
        self, collaboration_id: str, party_id: str, token: str | None
    ) -> Registration:
        """Register an input party; a new one gets its token once, a repeat gets none."""
        record = await self.access.require(collaboration_id)
        definition = record.definition
        if definition.registration == "operator":
            self.gate.require(token)
        expected = definition.expected_party(party_id)
        if definition.input_parties and expected is None:
            raise Forbidden(f"'{party_id}' is not an expected input party", "path.party_id")
        issued = issue_party_token()
        party = PartyRecord(
            collaboration_id,
            Role.INPUT,
            party_id,
            issued.sha256,
            time.time(),
            identity=expected.identity if expected else None,
        )
        outcome = await self.store.add_party(
            party, ACCEPTING, capacity=definition.number_of_parties
        )
        if outcome is AddOutcome.CLOSED:
            require_accepting((await self.access.require(collaboration_id)).state)
        if outcome is AddOutcome.FULL:
            message = f"all {definition.number_of_parties} input places are taken"
            raise PtxError(message, 409, [Problem("path.party_id", message)])
        plan = await self.access.engine(definition.engine).input_plan(definition)
        if outcome is AddOutcome.EXISTS:
            existing = await self.store.party(collaboration_id, Role.INPUT, party_id)
            assert existing is not None
            return Registration(record, existing, False, plan=plan)
        log.info("input party registered", collaboration_id=collaboration_id, party=party_id)
        return Registration(record, party, True, issued.value, plan=plan)

    async def unregister_input(
        self, collaboration_id: str, party_id: str, token: str | None
    ) -> None:
        """Withdraw an input party and its upload (the party itself or the operator)."""
        await self.access.input_party(collaboration_id, party_id, token, operator_ok=True)
        removed = await self.store.remove_party(collaboration_id, Role.INPUT, party_id)
        if removed is None:
            require_accepting((await self.access.require(collaboration_id)).state)
        await self.advance(collaboration_id)

    async def approve(
        self, collaboration_id: str, party_id: str, sha256: str, token: str | None
    ) -> CollaborationRecord:
        """An input party approves the program by its hash (which must be the current one)."""
        record, _ = await self.access.input_party(
            collaboration_id, party_id, token, operator_ok=False
        )
        _check_hash(record, sha256, "program_sha256")
        if await self.store.approve(collaboration_id, party_id, sha256) is None:
            require_accepting((await self.access.require(collaboration_id)).state)
        return await self.advance(collaboration_id)

    async def confirm_upload(
        self,
        collaboration_id: str,
        party_id: str,
        token: str | None,
        *,
        secret_ids: list[str],
        rows: int | None,
        program_sha256: str | None = None,
    ) -> tuple[CollaborationRecord, bool]:
        """Record an input party's upload (idempotent); True when it was new.

        The upload is checked against the specification and by the engine. Giving
        ``program_sha256`` approves the program; with ``approval = on_confirm`` confirming
        approves the hash the party was given at registration.
        """
        record, party = await self.access.input_party(
            collaboration_id, party_id, token, operator_ok=False
        )
        if party.confirmed_at is not None:
            return record, _same_upload(party, secret_ids, rows)
        require_accepting(record.state)
        definition = record.definition
        if program_sha256 is not None:
            _check_hash(record, program_sha256, "program_sha256")
        problems = definition.input_specification.check_upload(secret_ids, rows)
        if problems:
            raise PtxError("upload does not match the input specification", 422, problems)
        engine = self.access.engine(definition.engine)
        await engine.register_inputs(definition, PartyInput(party_id, secret_ids, rows))
        approve = program_sha256
        if approve is None and definition.approval == "on_confirm":
            approve = definition.program.sha256
        confirmed = await self.store.confirm_upload(
            collaboration_id, party_id, secret_ids, rows, approve=approve
        )
        if not confirmed:
            # A concurrent confirmation of this party won, or the run started meanwhile.
            latest = await self.store.party(collaboration_id, Role.INPUT, party_id)
            if latest is not None and latest.confirmed_at is not None:
                return await self.access.require(collaboration_id), _same_upload(
                    latest, secret_ids, rows
                )
            require_accepting((await self.access.require(collaboration_id)).state)
            raise NotFoundError("no such input party", "path.party_id")
        log.info("upload confirmed", collaboration_id=collaboration_id, party=party_id)
        self.changes.changed()
        return await self.advance(collaboration_id), True

    async def register_output(
        self,
        collaboration_id: str,
        party_id: str,
        token: str | None,
        *,
        endpoint: str,
        notify_secret: str | None = None,
    ) -> Registration:
        """Register an output party (operator): results and notifications go to it."""
        self.gate.require(token)
        record = await self.access.require(collaboration_id)
        try:
            endpoint = check_endpoint(endpoint)
        except ValueError as exc:
            raise PtxError(str(exc), 422, [Problem("party_client_endpoint", str(exc))]) from None
        party, party_token = new_output_party(
            collaboration_id, party_id, endpoint, notify_secret, time.time()
        )
        live = [CollabState.OPEN, CollabState.READY, CollabState.RUNNING]
        outcome = await self.store.add_party(party, live)
        if outcome is AddOutcome.CLOSED:
            state = (await self.access.require(collaboration_id)).state
            message = f"collaboration is {state.value}"
            raise PtxError(message, 409, [Problem("state", message)])
        if outcome is AddOutcome.EXISTS:
            existing = await self.store.party(collaboration_id, Role.OUTPUT, party_id)
            assert existing is not None
            return Registration(record, existing, False)
        log.info("output party registered", collaboration_id=collaboration_id, party=party_id)
        record = await self.advance(collaboration_id)
        return Registration(record, party, True, party_token, party.notify_secret)


def new_output_party(
    collaboration_id: str,
    party_id: str,
    endpoint: str | None,
    notify_secret: str | None,
    now: float,
) -> tuple[PartyRecord, str]:
    """A new output party's record (a notify secret generated unless given) and its token."""
    issued = issue_party_token()
    party = PartyRecord(
        collaboration_id,
        Role.OUTPUT,
        party_id,
        issued.sha256,
        now,
        endpoint=endpoint,
        notify_secret=notify_secret or new_notify_secret(),
    )
    return party, issued.value


def _check_hash(record: CollaborationRecord, sha256: str, field_name: str) -> None:
    if sha256 != record.definition.program.sha256:
        message = f"does not match the program's sha256 {record.definition.program.sha256}"
        raise PtxError(message, 422, [Problem(field_name, message)])


def _same_upload(party: PartyRecord, secret_ids: list[str], rows: int | None) -> bool:
    """False for a repeat of the confirmed upload; 409 for a different one."""
    if party.secret_ids == secret_ids and rows in (None, party.rows):
        return False
    message = "already confirmed with other secrets or rows"
    raise PtxError(message, 409, [Problem("secret_ids", message)])
