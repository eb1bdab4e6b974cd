"""The ``mpc`` processor: a chain step's threads become inputs of collaborations on the nodes.

For a job of a configured chain (:class:`~.matching.ChainMatcher`):

1. ``validate`` (before the ACK): the threads map to input parties and their records to
   typed columns; anything wrong is a 422 naming the rows, fields and problems.
2. ``process``: per configured computation, create or find the collaboration of
   (configuration, chainId) in this process's coordinator (with the configured output
   parties), register every thread as an input party, share its rows for the
   collaboration's engine and upload the shares (:mod:`.uploads`: MPyC nodes or Carbyne
   Stack VCPs; a thread's columns are encoded once for all computations), and confirm
   (approving the program by its hash). The job goes ``shared`` (its stored plaintext is
   dropped), then ``computing``. A thread *by reference*
   (:mod:`.references`) is not shared: its party's own client uploads and confirms in
   the collaborations created ahead by :meth:`MpcProcessor.register_reference`; the
   processor waits for that upload (woken by the coordinator) until the collaboration's
   deadline and checks its secret ids and row count before sharing any thread's rows.
3. Wait (woken by the coordinator, no busy polling) until each collaboration ended; the
   gateway is the in-process output party ``chain``: it reads the result shares from the
   nodes, reconstructs and shapes the resume ``data`` and ``params``. The configured
   output parties get the coordinator's signed notification and fetch their own result
   shares with their own tokens (a final node's result reaches them that way).

A job taken over in ``shared``/``computing`` (after a crash) goes straight to step 3: the
collaboration ids derive from (configuration, chainId, computation, retry number). A job
an operator retried from ``received`` (``jobs retry``, its payload kept while held) gets
fresh collaborations: the failed or expired ones cannot run again. Failures after the
ACK follow ``on_failure``: fail the job, hold it for an operator, or resume the chain with
an explicit error object. Plaintext is never logged.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.chains.config import CHAIN_OUTPUT_PARTY, ChainConfig, Computation
from ptx_chain_node.chains.matching import ChainMatcher
from ptx_chain_node.chains.records import ThreadRows, typed_rows
from ptx_chain_node.chains.references import Reference, is_reference, parse_reference
from ptx_chain_node.chains.shaping import computation_value, failure, shape
from ptx_chain_node.chains.step_collaborations import collaboration_id
from ptx_chain_node.chains.threads import PartyThread, assign
from ptx_chain_node.chains.uploads import EngineUploads
from ptx_chain_node.coordination.collaboration import CollaborationRequest, ExpectedParty
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord, Role
from ptx_chain_node.coordination.service import Coordinator
from ptx_chain_node.coordination.states import ACCEPTING, CollabState
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.job import Job, JobResult, JobState
from ptx_chain_node.mpc.encoding import EncodedColumns
from ptx_chain_node.mpc.rows import MAX_PROBLEMS
from ptx_chain_node.payload import ChainPayload, threads
from ptx_chain_node.processor import ProcessingError, Progress

log = structlog.get_logger(__name__)

#: States in which a configured output party is still added to a collaboration.
_LIVE = (CollabState.OPEN, CollabState.READY, CollabState.RUNNING)

Inputs = list[tuple[PartyThread, ThreadRows | Reference]]


def chain_inputs(config: ChainConfig, payload: ChainPayload) -> Inputs:
    """The input parties and typed rows of a chain step; 422 naming every problem (pure)."""
    bound, problems = assign(config, threads(payload))
    inputs: Inputs = []
    for party_thread in bound:
        data = party_thread.thread.data
        given: ThreadRows | Reference | None
        if is_reference(data):
            given, found = parse_reference(config, data, party_thread.where)
        else:
            given, found = typed_rows(config.input, data, party_thread.where)
        problems += found
        if given is not None:
            inputs.append((party_thread, given))
    expected = len(inputs) + len(config.external_parties)
    if config.min_parties is not None and expected < config.min_parties:
        problems.append(
            Problem("body.data", f"{expected} input parties; at least {config.min_parties}")
        )
    if problems:
        raise PtxError(
            "the data does not match the chain's input specification",
            422,
            problems[:MAX_PROBLEMS],
        )
    return inputs


class MpcProcessor:
    """Runs a chain step as MPC collaborations in this process's coordinator.

    ``uploads`` holds each available engine's upload and result path, by engine name.
    """

    def __init__(
        self,
        matcher: ChainMatcher,
        coordinator: Coordinator,
        uploads: Mapping[str, EngineUploads],
        *,
        operator_token: str | None = None,
        run_allowance: float = 180.0,
    ) -> None:
        self.matcher = matcher
        self.coordinator = coordinator
        self.uploads = dict(uploads)
        self._operator = operator_token
        self.run_allowance = run_allowance

    async def validate(self, context: ChainContext, payload: ChainPayload) -> None:
        """Refuse (4xx) a request no configuration serves or whose data does not fit."""
        config = await self.matcher.match(context, payload)
        chain_inputs(config, payload)

    async def process(self, job: Job, progress: Progress) -> JobResult:
        config = await self.matcher.match(job.context, job.payload)
        try:
            return await self._process(config, job, progress)
        except (PtxError, httpx.HTTPError) as exc:
            reason = exc.message if isinstance(exc, PtxError) else type(exc).__name__
            error = ProcessingError(f"mpc: {reason}")
        except ProcessingError as exc:
            error = exc
        log.warning("mpc step failed", chain=config.name, reason=error.reason)
        if config.on_failure == "resume_error":
            return failure(config, error.reason)
        raise ProcessingError(error.reason, hold=config.on_failure == "hold")

    async def _process(self, config: ChainConfig, job: Job, progress: Progress) -> JobResult:
        chain_id = job.context.chain_id
        if job.state == JobState.RECEIVED:
            if job.payload is None:
                raise ProcessingError("job has no payload")
            await self._share(config, job.payload, chain_id, job.retries)
            await progress(JobState.SHARED)  # the stored plaintext is dropped here
        await progress(JobState.COMPUTING)
        results: dict[str, Any] = {}
        collaborations: dict[str, str] = {}
        parties: dict[str, int | None] = {}
        for computation in config.computations:
            cid = collaboration_id(config, chain_id, computation, job.retries)
            collaborations[computation.name] = cid
            record = await self._ended(cid)
            results[computation.name] = await self._result(record, computation)
            for party in await self.coordinator.store.parties(cid, Role.INPUT):
                if party.confirmed_at is not None:
                    parties[party.party_id] = party.rows
        return shape(config, results, parties, collaborations)

    # -- collaborations and uploads --------------------------------------------------------

    async def _share(
        self, config: ChainConfig, payload: ChainPayload, chain_id: str, retry: int
    ) -> None:
        """Create the collaborations, check the references, upload every thread's rows.

        Each thread's columns are wrapped in one :class:`EncodedColumns` for all the
        computations, so each ``(column, scale)`` of a thread is encoded once.
        """
        inputs = chain_inputs(config, payload)
        expected = [
            ExpectedParty(id=pt.party.id, identity=pt.party.identity or pt.party.id)
            for pt, _ in inputs
        ]
        records: list[CollaborationRecord] = []
        for computation in config.computations:
            record = await self._collaboration(config, computation, chain_id, retry, expected)
            for party_thread, given in inputs:
                if isinstance(given, Reference):
                    record = await self._referenced(
                        record, party_thread.party.id, computation, given
                    )
            records.append(record)
        by_value = [
            (party_thread.party.id, given, EncodedColumns(given.columns))
            for party_thread, given in inputs
            if isinstance(given, ThreadRows)
        ]
        # Rows are shared only once every reference holds: a failed reference never
        # lets the other threads' data into a computation.
        for record in records:
            record = await self.coordinator.require(record.id)
            for party_id, rows, encoded in by_value:
                if record.state in ACCEPTING:
                    await self._upload(record, party_id, rows, encoded)

    async def register_reference(
        self, config: ChainConfig, chain_id: str, party_id: str, retry: int = 0
    ) -> dict[str, dict[str, str]]:
        """Register ``party_id`` ahead of its chain, to upload with its own client.

        Creates (or finds) the collaboration of each computation of ``config`` for
        ``chain_id`` (expected parties: every configured party) and registers the party in
        each, as the operator. Returns ``{computation: {collaboration_id, token}}``: the
        party's own tokens, for ``ptx-chain-node client upload``. Asking again before the
        party confirmed issues new tokens (the old ones stop working); after, it is a 409.
        """
        parties = {p.id: p for p in config.parties}
        origin = config.origin_party()
        parties.setdefault(origin.id, origin)
        if party_id not in parties:
            message = f"'{party_id}' is not a thread party of chain '{config.name}'"
            raise PtxError(message, 422, [Problem("party_id", message)])
        expected = [ExpectedParty(id=p.id, identity=p.identity or p.id) for p in parties.values()]
        answer: dict[str, dict[str, str]] = {}
        for computation in config.computations:
            record = await self._collaboration(config, computation, chain_id, retry, expected)
            cid = record.id
            registration = await self.coordinator.register_input(cid, party_id, self._operator)
            if not registration.created:
                if registration.party.confirmed_at is not None:
                    message = f"'{party_id}' already uploaded to collaboration {cid}"
                    raise PtxError(message, 409, [Problem("party_id", message)])
                await self.coordinator.unregister_input(cid, party_id, self._operator)
                registration = await self.coordinator.register_input(cid, party_id, self._operator)
            assert registration.token is not None
            answer[computation.name] = {"collaboration_id": cid, "token": registration.token}
        return answer

    async def _referenced(
        self,
        record: CollaborationRecord,
        party_id: str,
        computation: Computation,
        reference: Reference,
    ) -> CollaborationRecord:
        """Wait for a thread by reference's upload; check the reference names it exactly.

        An upload not yet confirmed is waited for (woken by the coordinator when an upload
        is confirmed or the collaboration ends, no polling) until the collaboration's
        deadline; a confirmed upload with other secret ids or rows fails at once.
        """
        where = f"input party '{party_id}', computation '{computation.name}'"
        party = await self.coordinator.store.party(record.id, Role.INPUT, party_id)
        if party is None or party.confirmed_at is None:
            log.info("waiting for a referenced upload", collaboration_id=record.id, party=party_id)
            deadline = record.definition.deadline or time.time()
            record, party = await self.coordinator.wait_confirmed(
                record.id, party_id, max(0.0, deadline - time.time())
            )
            if party is None and record.state in ACCEPTING:
                record = await self.coordinator.advance(record.id)  # settle it at the deadline
                party = await self.coordinator.store.party(record.id, Role.INPUT, party_id)
            if party is None or party.confirmed_at is None:
                raise ProcessingError(
                    f"{where}: no confirmed upload by the collaboration's deadline"
                    f" (collaboration {record.state.value})"
                    if time.time() >= deadline
                    else f"{where}: no confirmed upload (collaboration {record.state.value})"
                )
        if party.secret_ids != reference.secret_ids[computation.name] or party.rows != (
            reference.rows
        ):
            raise ProcessingError(f"{where}: the reference is not the confirmed upload")
        return record

    async def _collaboration(
        self,
        config: ChainConfig,
        computation: Computation,
        chain_id: str,
        retry: int,
        parties: list[ExpectedParty],
    ) -> CollaborationRecord:
        cid = collaboration_id(config, chain_id, computation, retry)
        existing = await self.coordinator.store.get(cid)
        if existing is not None:
            await self._output_parties(config, existing)  # a crash may have come between
            return existing
        expected = parties + list(config.external_parties)
        min_parties = min(config.min_parties or len(expected), len(expected))
        request = CollaborationRequest(
            name=f"{config.name}/{computation.name}",
            program=computation.ref(),
            input_specification=config.input.spec(),
            input_parties=expected,
            min_parties=min_parties,
            allow_partial_run=min_parties < len(expected),
            deadline=_deadline(config.deadline),
            engine=config.engine,
            compute_config=config.compute_config,
            registration="open" if config.external_parties else "operator",
            approval="on_confirm",
        )
        try:
            record, _ = await self.coordinator.create(
                request,
                self._operator,
                collaboration_id=cid,
                internal_outputs=[CHAIN_OUTPUT_PARTY],
            )
        except Exception:
            existing = await self.coordinator.store.get(cid)
            if existing is None:
                raise
            record = existing
        else:
            log.info("chain collaboration created", collaboration_id=cid, chain=config.name)
        await self._output_parties(config, record)
        return record

    async def _output_parties(self, config: ChainConfig, record: CollaborationRecord) -> None:
        """Add the configured output parties (their operator-issued token hashes) if new."""
        for party in config.output_parties:
            await self.coordinator.store.add_party(
                PartyRecord(
                    record.id,
                    Role.OUTPUT,
                    party.id,
                    party.token_sha256,
                    time.time(),
                    endpoint=party.endpoint,
                    notify_secret=party.notify_secret,
                ),
                _LIVE,
            )

    async def _upload(
        self,
        record: CollaborationRecord,
        party_id: str,
        rows: ThreadRows,
        encoded: EncodedColumns,
    ) -> None:
        cid = record.id
        registration = await self.coordinator.register_input(cid, party_id, self._operator)
        if not registration.created:
            if registration.party.confirmed_at is not None:
                return  # uploaded before a restart
            # Registered before a restart, token lost: register again for a new one.
            await self.coordinator.unregister_input(cid, party_id, self._operator)
            registration = await self.coordinator.register_input(cid, party_id, self._operator)
        upload = await self._uploads(record).upload(record, party_id, rows, encoded)
        await self.coordinator.confirm_upload(
            cid,
            party_id,
            registration.token,
            secret_ids=upload.secret_ids,
            rows=upload.rows,
            program_sha256=record.definition.program.sha256,
        )

    def _uploads(self, record: CollaborationRecord) -> EngineUploads:
        uploads = self.uploads.get(record.definition.engine)
        if uploads is None:
            raise ProcessingError(f"engine '{record.definition.engine}' is not available")
        return uploads

    # -- results ---------------------------------------------------------------------------

    async def _ended(self, cid: str) -> CollaborationRecord:
        record = await self.coordinator.require(cid)
        deadline = record.definition.deadline or time.time()
        timeout = max(0.0, deadline - time.time()) + self.run_allowance
        record = await self.coordinator.wait_ended(cid, timeout)
        if record.state is CollabState.DONE:
            return record
        if record.state in (CollabState.FAILED, CollabState.EXPIRED):
            raise ProcessingError(f"collaboration {record.state.value}: {record.error}")
        raise ProcessingError(f"no result within {timeout:.0f} s (collaboration {record.state})")

    async def _result(self, record: CollaborationRecord, computation: Computation) -> Any:
        computed = await self._uploads(record).result(record)
        if computed.withheld is not None:
            return {"withheld": computed.withheld}
        return computation_value(computation, computed.names, computed.values)


def _deadline(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
