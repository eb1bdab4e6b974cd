"""The coordinator's use cases, transport-free: what the native and upstream routes call.

Authorization is decided here from the caller's bearer token (``token``): the operator token
creates, deletes and registers output parties; a party token (issued at registration,
stored hashed) acts for that party; results go only to output parties. State changes are
written to the store before a use case returns.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from ptx_chain_node.coordination.access import CollaborationAccess
from ptx_chain_node.coordination.collaboration import Collaboration, CollaborationRequest
from ptx_chain_node.coordination.engine import Engine
from ptx_chain_node.coordination.enrolment import Enrolment, Registration, new_output_party
from ptx_chain_node.coordination.notify import Notifier, NotifyClient, NotifyPolicy
from ptx_chain_node.coordination.outbox import NewNotification, NotificationStore
from ptx_chain_node.coordination.programs import ProgramRegistry
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.runner import RunPolicy, RunSupervisor, notification_body
from ptx_chain_node.coordination.states import ACCEPTING, TERMINAL, CollabState, next_state
from ptx_chain_node.coordination.store import CollaborationStore
from ptx_chain_node.coordination.tokens import OperatorGate, issue_party_token
from ptx_chain_node.coordination.waiting import Changes
from ptx_chain_node.errors import NotFoundError, Problem, PtxError
from ptx_chain_node.store.database import Database

__all__ = ["Coordinator", "CoordinatorPolicy", "Registration"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CoordinatorPolicy:
    """Timing of runs, notifications and the deadline sweep."""

    run: RunPolicy = field(default_factory=RunPolicy)
    notify: NotifyPolicy = field(default_factory=NotifyPolicy)
    sweep_interval: float = 5.0


class Coordinator:
    """Collaborations, parties, runs and notifications over one store.

    The parties' use cases are :class:`~ptx_chain_node.coordination.enrolment.Enrolment`'s,
    lookups and their checks :class:`~ptx_chain_node.coordination.access.CollaborationAccess`'s
    and waiting :class:`~ptx_chain_node.coordination.waiting.Changes`'; the methods here are
    what the routes call.
    """

    def __init__(
        self,
        database: Database,
        *,
        engines: Mapping[str, Engine],
        programs: ProgramRegistry,
        http: httpx.AsyncClient,
        operator_token: str | None = None,
        policy: CoordinatorPolicy | None = None,
    ) -> None:
        self.policy = policy or CoordinatorPolicy()
        self.database = database
        self.store = CollaborationStore(database)
        self.outbox = NotificationStore(database)
        self.engines = dict(engines)
        self.programs = programs
        self.gate = OperatorGate(operator_token)
        self.access = CollaborationAccess(self.store, self.gate, self.engines)
        self.changes = Changes(self.access)
        self.enrolment = Enrolment(self.access, self.changes, self.advance)
        self.notifier = Notifier(
            self.outbox, NotifyClient(http, self.policy.notify.timeout), self.policy.notify
        )
        self.runner = RunSupervisor(
            self.store, self.engines, self.policy.run, on_end=self._run_ended
        )

    # -- life cycle of the service ---------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous process left: runs in progress, pending notifications."""
        if self.database.is_sqlite:
            # One process owns a SQLite file: leases of the previous one are void.
            await self.store.release_runs()
            await self.outbox.release_all()
        adopted = await self.runner.adopt()
        if adopted:
            log.info("resumed runs", count=adopted)
        await self.notifier.pump()

    async def stop(self) -> None:
        """Stop supervising and notifying; leases are released for the next start."""
        await self.runner.stop()
        await self.notifier.stop()

    async def sweep(self, now: float | None = None) -> None:
        """One pass of the background sweep: deadlines, ready starts, orphans, notifications."""
        now = time.time() if now is None else now
        for collaboration_id in await self.store.due(now):
            await self.advance(collaboration_id, now=now)
        for collaboration_id in await self.store.ready():
            await self.advance(collaboration_id, now=now)
        await self.runner.adopt()
        await self.notifier.pump()

    async def idle(self) -> None:
        """Wait for the runs and deliveries started so far (tests and benchmarks)."""
        await self.runner.idle()
        await self.notifier.idle()

    async def _run_ended(self) -> None:
        self.changes.ended()
        await self.notifier.pump()

    async def wait_ended(
        self, collaboration_id: str, timeout: float, *, recheck: float = 5.0
    ) -> CollaborationRecord:
        """The collaboration once it ended (done, failed, expired), or as it is at ``timeout``.

        Woken when a run of this process ends or a collaboration expires here; the store is
        read again every ``recheck`` seconds for ends seen by other processes.
        """
        return await self.changes.wait_ended(collaboration_id, timeout, recheck=recheck)

    async def wait_confirmed(
        self, collaboration_id: str, party_id: str, timeout: float, *, recheck: float = 5.0
    ) -> tuple[CollaborationRecord, PartyRecord | None]:
        """An input party once its upload is confirmed, with the collaboration.

        The party is None when the collaboration no longer accepts uploads without it, or
        at ``timeout``. Woken when an upload is confirmed or a collaboration ends in this
        process; the store is read again every ``recheck`` seconds for other processes.
        """
        return await self.changes.wait_confirmed(
            collaboration_id, party_id, timeout, recheck=recheck
        )

    # -- collaborations -------------------------------------------------------------------

    async def create(
        self,
        request: CollaborationRequest,
        token: str | None,
        *,
        collaboration_id: str | None = None,
        internal_outputs: Sequence[str] = (),
    ) -> tuple[CollaborationRecord, list[Registration]]:
        """Create a collaboration (operator); initial output parties get tokens and secrets.

        ``collaboration_id`` fixes the id (a chain step's collaborations are found by it);
        ``internal_outputs`` are output parties of this process (the gateway's chain step):
        they have no endpoint, get no notification and no token (they read results here).
        """
        self.gate.require(token)
        engine = self.access.engine(request.engine)
        program = self.programs.resolve(request.program, request.input_specification)
        config = engine.validate_config(request.compute_config)
        now = time.time()
        expected = request.expected_count
        definition = Collaboration(
            id=collaboration_id or str(uuid.uuid4()),
            name=request.name,
            program=program,
            input_specification=request.input_specification,
            input_parties=request.input_parties,
            number_of_parties=expected,
            min_parties=request.min_parties or expected,
            allow_partial_run=request.allow_partial_run,
            deadline=request.deadline.timestamp() if request.deadline else None,
            engine=request.engine,
            compute_config=config,
            registration=request.registration,
            approval=request.approval,
            created_at=now,
        )
        if definition.deadline is not None and definition.deadline <= now:
            message = "the deadline has already passed"
            raise PtxError(message, 422, [Problem("deadline", message)])
        outputs = [
            new_output_party(definition.id, spec.id, spec.endpoint, spec.notify_secret, now)
            for spec in request.output_parties
        ]
        internal = [
            PartyRecord(definition.id, Role.OUTPUT, party_id, issue_party_token().sha256, now)
            for party_id in internal_outputs
        ]
        await self.store.create(definition, [p for p, _ in outputs] + internal)
        record = await self.require(definition.id)
        log.info("collaboration created", collaboration_id=definition.id, engine=definition.engine)
        return record, [
            Registration(record, party, True, value, party.notify_secret)
            for party, value in outputs
        ]

    async def require(self, collaboration_id: str) -> CollaborationRecord:
        """The collaboration, or 404."""
        return await self.access.require(collaboration_id)

    async def collaborations(
        self, *, state: CollabState | None = None, limit: int = 100, offset: int = 0
    ) -> list[CollaborationRecord]:
        """Collaborations, newest first (definitions are public: no secrets in them)."""
        return await self.store.collaborations(state=state, limit=limit, offset=offset)

    async def delete(self, collaboration_id: str, token: str | None) -> None:
        """Delete a collaboration that is not running (operator); the engine forgets it too."""
        self.gate.require(token)
        record = await self.require(collaboration_id)
        if not await self.store.delete(collaboration_id):
            message = f"collaboration is {record.state.value}; it cannot be deleted now"
            raise PtxError(message, 409, [Problem("state", message)])
        engine = self.engines.get(record.definition.engine)
        if engine is not None:
            await engine.delete(collaboration_id)
        log.info("collaboration deleted", collaboration_id=collaboration_id)

    async def party_list(self, collaboration_id: str, token: str | None) -> list[PartyRecord]:
        """The parties (operator or any party of the collaboration)."""
        await self.access.member(collaboration_id, token)
        return await self.store.parties(collaboration_id)

    async def compute_config(self, collaboration_id: str, token: str | None) -> dict[str, Any]:
        """What input parties' clients need to upload shares (operator or a party)."""
        record = await self.access.member(collaboration_id, token)
        return await self.access.engine(record.definition.engine).input_plan(record.definition)

    async def results(self, collaboration_id: str, token: str | None) -> CollaborationRecord:
        """The collaboration with its result ids, for an output party only."""
        return await self.access.output_party(collaboration_id, token)

    # -- parties (see Enrolment) ----------------------------------------------------------

    async def register_input(
        self, collaboration_id: str, party_id: str, token: str | None
    ) -> Registration:
        """Register an input party; a new one gets its token once, a repeat gets none."""
        return await self.enrolment.register_input(collaboration_id, party_id, token)

    async def unregister_input(
        self, collaboration_id: str, party_id: str, token: str | None
    ) -> None:
        """Withdraw an input party and its upload (the party itself or the operator)."""
        await self.enrolment.unregister_input(collaboration_id, party_id, token)

    async def approve(
        self, collaboration_id: str, party_id: str, sha256: str, token: str | None
    ) -> CollaborationRecord:
        """An input party approves the program by its hash (which must be the current one)."""
        return await self.enrolment.approve(collaboration_id, party_id, sha256, token)

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

        See :meth:`Enrolment.confirm_upload` for the checks and the approval it implies.
        """
        return await self.enrolment.confirm_upload(
            collaboration_id,
            party_id,
            token,
            secret_ids=secret_ids,
            rows=rows,
            program_sha256=program_sha256,
        )

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
        return await self.enrolment.register_output(
            collaboration_id, party_id, token, endpoint=endpoint, notify_secret=notify_secret
        )

    # -- state ----------------------------------------------------------------------------

    async def advance(
        self, collaboration_id: str, *, now: float | None = None
    ) -> CollaborationRecord:
        """Apply the state the facts call for; start the run when it is time (exactly once)."""
        for _ in range(4):
            found = await self.store.facts(collaboration_id)
            if found is None:
                raise NotFoundError("no such collaboration", "path.collaboration_id")
            record, facts = found
            target = next_state(record.state, facts, time.time() if now is None else now)
            if target is record.state:
                return record
            if target is CollabState.RUNNING:
                run_id = str(uuid.uuid4())
                lease = self.policy.run.lease_seconds
                if await self.store.start_run(collaboration_id, run_id, self.runner.owner, lease):
                    log.info("run started", collaboration_id=collaboration_id, run_id=run_id)
                    self.runner.launch(collaboration_id, run_id, fresh=True)
            elif target is CollabState.EXPIRED:
                error = f"deadline passed with {facts.approved} of {facts.expected} inputs"
                notify = NewNotification(
                    notification_body(collaboration_id, target, None, error),
                    time.time() + self.policy.run.notify_deadline,
                )
                if await self.store.finish(
                    collaboration_id, ACCEPTING, target, error=error, notify=notify
                ):
                    log.info("collaboration expired", collaboration_id=collaboration_id)
                    self.changes.ended()
                    await self.notifier.pump()
            else:
                await self.store.transition(collaboration_id, [record.state], target)
        return await self.require(collaboration_id)

    @staticmethod
    def terminal(record: CollaborationRecord) -> bool:
        """True when the collaboration has ended (done, failed, expired)."""
        return record.state in TERMINAL
