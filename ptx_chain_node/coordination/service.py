"""The coordinator's use cases, transport-free: what the native and upstream routes call.

Authorization is decided here from the caller's bearer token (``token``): the operator token
creates, deletes and registers output parties; a party token (issued at registration,
stored hashed) acts for that party; results go only to output parties. State changes are
written to the store before a use case returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from ptx_chain_node.coordination.collaboration import (
    Collaboration,
    CollaborationRequest,
    check_endpoint,
)
from ptx_chain_node.coordination.engine import Engine, PartyInput
from ptx_chain_node.coordination.notify import Notifier, NotifyClient, NotifyPolicy
from ptx_chain_node.coordination.outbox import NewNotification, NotificationStore
from ptx_chain_node.coordination.party_store import AddOutcome
from ptx_chain_node.coordination.programs import ProgramRegistry
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.runner import RunPolicy, RunSupervisor, notification_body
from ptx_chain_node.coordination.states import (
    ACCEPTING,
    TERMINAL,
    CollabState,
    next_state,
    require_accepting,
)
from ptx_chain_node.coordination.store import CollaborationStore
from ptx_chain_node.coordination.tokens import (
    Forbidden,
    OperatorGate,
    issue_party_token,
    new_notify_secret,
    token_matches,
)
from ptx_chain_node.errors import AuthError, NotFoundError, Problem, PtxError
from ptx_chain_node.store.database import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CoordinatorPolicy:
    """Timing of runs, notifications and the deadline sweep."""

    run: RunPolicy = field(default_factory=RunPolicy)
    notify: NotifyPolicy = field(default_factory=NotifyPolicy)
    sweep_interval: float = 5.0


@dataclass(frozen=True)
class Registration:
    """A party's registration; ``token`` (and a generated ``notify_secret``) only when new."""

    record: CollaborationRecord
    party: PartyRecord
    created: bool
    token: str | None = field(default=None, repr=False)
    notify_secret: str | None = field(default=None, repr=False)
    plan: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    """Collaborations, parties, runs and notifications over one store."""

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
        self.notifier = Notifier(
            self.outbox, NotifyClient(http, self.policy.notify.timeout), self.policy.notify
        )
        self.runner = RunSupervisor(
            self.store, self.engines, self.policy.run, on_end=self._run_ended
        )
        self._ended = asyncio.Event()
        self._changed = asyncio.Event()  # an upload confirmed or a collaboration ended

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

    def _signal_end(self) -> None:
        event, self._ended = self._ended, asyncio.Event()
        event.set()
        self._signal_change()

    def _signal_change(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _run_ended(self) -> None:
        self._signal_end()
        await self.notifier.pump()

    async def wait_ended(
        self, collaboration_id: str, timeout: float, *, recheck: float = 5.0
    ) -> CollaborationRecord:
        """The collaboration once it ended (done, failed, expired), or as it is at ``timeout``.

        Woken when a run of this process ends or a collaboration expires here; the store is
        read again every ``recheck`` seconds for ends seen by other processes.
        """
        deadline = time.monotonic() + timeout
        while True:
            event = self._ended
            record = await self.require(collaboration_id)
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
        at ``timeout``. Woken when an upload is confirmed or a collaboration ends in this
        process; the store is read again every ``recheck`` seconds for other processes.
        """
        deadline = time.monotonic() + timeout
        while True:
            event = self._changed
            record = await self.require(collaboration_id)
            party = await self.store.party(collaboration_id, Role.INPUT, party_id)
            if party is not None and party.confirmed_at is not None:
                return record, party
            remaining = deadline - time.monotonic()
            if record.state not in ACCEPTING or remaining <= 0:
                return record, None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, recheck))

    # -- collaborations -------------------------------------------------------------------

    def _engine(self, name: str) -> Engine:
        engine = self.engines.get(name)
        if engine is None:
            message = f"unknown engine '{name}' (available: {', '.join(sorted(self.engines))})"
            raise PtxError(message, 422, [Problem("engine", message)])
        return engine

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
        engine = self._engine(request.engine)
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
        outputs: list[tuple[PartyRecord, str, str]] = []
        for spec in request.output_parties:
            issued = issue_party_token()
            secret = spec.notify_secret or new_notify_secret()
            party = PartyRecord(
                definition.id,
                Role.OUTPUT,
                spec.id,
                issued.sha256,
                now,
                endpoint=spec.endpoint,
                notify_secret=secret,
            )
            outputs.append((party, issued.value, secret))
        internal = [
            PartyRecord(definition.id, Role.OUTPUT, party_id, issue_party_token().sha256, now)
            for party_id in internal_outputs
        ]
        await self.store.create(definition, [p for p, _, _ in outputs] + internal)
        record = await self.require(definition.id)
        log.info("collaboration created", collaboration_id=definition.id, engine=definition.engine)
        return record, [
            Registration(record, party, True, value, secret) for party, value, secret in outputs
        ]

    async def require(self, collaboration_id: str) -> CollaborationRecord:
        """The collaboration, or 404."""
        record = await self.store.get(collaboration_id)
        if record is None:
            raise NotFoundError("no such collaboration", "path.collaboration_id")
        return record

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

    async def _member(self, record: CollaborationRecord, token: str | None) -> None:
        if self.gate.is_operator(token):
            return
        if token is None:
            raise AuthError("bearer token required")
        if not any(
            token_matches(token, p.token_sha256) for p in await self.store.parties(record.id)
        ):
            raise Forbidden("not a party of this collaboration")

    async def party_list(self, collaboration_id: str, token: str | None) -> list[PartyRecord]:
        """The parties (operator or any party of the collaboration)."""
        record = await self.require(collaboration_id)
        await self._member(record, token)
        return await self.store.parties(collaboration_id)

    async def compute_config(self, collaboration_id: str, token: str | None) -> dict[str, Any]:
        """What input parties' clients need to upload shares (operator or a party)."""
        record = await self.require(collaboration_id)
        await self._member(record, token)
        return await self._engine(record.definition.engine).input_plan(record.definition)

    # -- input parties --------------------------------------------------------------------

    async def _input_party(
        self, collaboration_id: str, party_id: str, token: str | None, *, operator_ok: bool
    ) -> tuple[CollaborationRecord, PartyRecord]:
        record = await self.require(collaboration_id)
        party = await self.store.party(collaboration_id, Role.INPUT, party_id)
        if party is None:
            raise NotFoundError("no such input party", "path.party_id")
        if token_matches(token, party.token_sha256):
            return record, party
        if operator_ok and token is not None and self.gate.is_operator(token):
            return record, party
        if token is None:
            raise AuthError("party bearer token required")
        raise Forbidden("the token is not this party's")

    async def register_input(
        self, collaboration_id: str, party_id: str, token: str | None
    ) -> Registration:
        """Register an input party; a new one gets its token once, a repeat gets none."""
        record = await self.require(collaboration_id)
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
            require_accepting((await self.require(collaboration_id)).state)
        if outcome is AddOutcome.FULL:
            message = f"all {definition.number_of_parties} input places are taken"
            raise PtxError(message, 409, [Problem("path.party_id", message)])
        plan = await self._engine(definition.engine).input_plan(definition)
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
        await self._input_party(collaboration_id, party_id, token, operator_ok=True)
        removed = await self.store.remove_party(collaboration_id, Role.INPUT, party_id)
        if removed is None:
            require_accepting((await self.require(collaboration_id)).state)
        await self.advance(collaboration_id)

    def _check_hash(self, record: CollaborationRecord, sha256: str, field_name: str) -> None:
        if sha256 != record.definition.program.sha256:
            message = f"does not match the program's sha256 {record.definition.program.sha256}"
            raise PtxError(message, 422, [Problem(field_name, message)])

    async def approve(
        self, collaboration_id: str, party_id: str, sha256: str, token: str | None
    ) -> CollaborationRecord:
        """An input party approves the program by its hash (which must be the current one)."""
        record, _ = await self._input_party(collaboration_id, party_id, token, operator_ok=False)
        self._check_hash(record, sha256, "program_sha256")
        if await self.store.approve(collaboration_id, party_id, sha256) is None:
            require_accepting((await self.require(collaboration_id)).state)
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
        record, party = await self._input_party(
            collaboration_id, party_id, token, operator_ok=False
        )
        if party.confirmed_at is not None:
            return record, self._same_upload(party, secret_ids, rows)
        require_accepting(record.state)
        definition = record.definition
        if program_sha256 is not None:
            self._check_hash(record, program_sha256, "program_sha256")
        problems = definition.input_specification.check_upload(secret_ids, rows)
        if problems:
            raise PtxError("upload does not match the input specification", 422, problems)
        engine = self._engine(definition.engine)
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
                return await self.require(collaboration_id), self._same_upload(
                    latest, secret_ids, rows
                )
            require_accepting((await self.require(collaboration_id)).state)
            raise NotFoundError("no such input party", "path.party_id")
        log.info("upload confirmed", collaboration_id=collaboration_id, party=party_id)
        self._signal_change()
        return await self.advance(collaboration_id), True

    @staticmethod
    def _same_upload(party: PartyRecord, secret_ids: list[str], rows: int | None) -> bool:
        """False for a repeat of the confirmed upload; 409 for a different one."""
        if party.secret_ids == secret_ids and rows in (None, party.rows):
            return False
        message = "already confirmed with other secrets or rows"
        raise PtxError(message, 409, [Problem("secret_ids", message)])

    # -- output parties and results -------------------------------------------------------

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
        record = await self.require(collaboration_id)
        try:
            endpoint = check_endpoint(endpoint)
        except ValueError as exc:
            raise PtxError(str(exc), 422, [Problem("party_client_endpoint", str(exc))]) from None
        issued = issue_party_token()
        secret = notify_secret or new_notify_secret()
        party = PartyRecord(
            collaboration_id,
            Role.OUTPUT,
            party_id,
            issued.sha256,
            time.time(),
            endpoint=endpoint,
            notify_secret=secret,
        )
        live = [CollabState.OPEN, CollabState.READY, CollabState.RUNNING]
        outcome = await self.store.add_party(party, live)
        if outcome is AddOutcome.CLOSED:
            message = f"collaboration is {(await self.require(collaboration_id)).state.value}"
            raise PtxError(message, 409, [Problem("state", message)])
        if outcome is AddOutcome.EXISTS:
            existing = await self.store.party(collaboration_id, Role.OUTPUT, party_id)
            assert existing is not None
            return Registration(record, existing, False)
        log.info("output party registered", collaboration_id=collaboration_id, party=party_id)
        record = await self.advance(collaboration_id)
        return Registration(record, party, True, issued.value, secret)

    async def results(self, collaboration_id: str, token: str | None) -> CollaborationRecord:
        """The collaboration with its result ids, for an output party only."""
        record = await self.require(collaboration_id)
        outputs = await self.store.parties(collaboration_id, Role.OUTPUT)
        if not any(token_matches(token, p.token_sha256) for p in outputs):
            if token is None:
                raise AuthError("output party bearer token required")
            raise Forbidden("results go to output parties only")
        return record

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
                    self._signal_end()
                    await self.notifier.pump()
            else:
                await self.store.transition(collaboration_id, [record.state], target)
        return await self.require(collaboration_id)

    @staticmethod
    def terminal(record: CollaborationRecord) -> bool:
        return record.state in TERMINAL
