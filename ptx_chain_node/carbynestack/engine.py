"""Carbyne Stack as an MPC engine: input plan, registered inputs, jobs, results, cleanup.

A thin layer over :class:`~ptx_chain_node.carbynestack.client.CarbyneStackClient` and the
program templates; it knows nothing about coordinators or service chains::

    engine = CarbyneStackEngine(client)
    plan = engine.input_plan()                     # hand to input parties
    await engine.register_inputs([id_a, id_b])     # lengths from the ptx-length tags
    job = await engine.run("histogram", {"edges": [0, 10, 20]})
    result = await engine.fetch_result(job)        # waits, reads, checks, decodes
    await engine.delete([id_a, id_b, job])

``run`` starts the activation in the background and returns its id at once (the gameID,
which is also the id of the result secret); :meth:`status` reports on it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any

import structlog

from ptx_chain_node.carbynestack.client import LENGTH_TAG, CarbyneStackClient, VcpError
from ptx_chain_node.carbynestack.encoding import from_field, from_fixed
from ptx_chain_node.carbynestack.templates import TEMPLATES, Program, render
from ptx_chain_node.errors import NotFoundError, Problem, ProtocolError, PtxError

log = structlog.get_logger(__name__)


class JobState(StrEnum):
    """Where an activation stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class JobStatus:
    """The state of one job; ``error`` holds the failure message."""

    job_id: str
    program: str
    state: JobState
    error: str | None = None


@dataclass(frozen=True)
class Result:
    """Decoded output of a job: integers, or exact fractions for fixed-point outputs."""

    job_id: str
    program: str
    values: list[int] | list[Fraction]


@dataclass(frozen=True)
class InputPlan:
    """What an input party must do to bring a secret in (no VCP ever sees it in clear)."""

    prime: int
    r: int
    rinv: int
    amphora_urls: dict[int, str]
    value_range: tuple[int, int]
    length_tag: str = LENGTH_TAG
    steps: tuple[str, ...] = (
        "sid = uuid4(); at every VCP GET {amphora}/input-masks?requestId=sid&count=n "
        "(Authorization: Bearer <token>)",
        "decode every field (base64 of n x 16-byte little-endian words, times rinv mod prime)"
        " and sum over VCPs mod prime: s, r, v, w, u",
        "abort unless w == s*r and u == v*r (mod prime) for every k",
        "m_k = (x_k - s_k) mod prime; negative x_k are taken mod prime",
        'POST {amphora}/masked-inputs {"secretId": sid, "data": [{"value": b64(m_k*r mod prime)}],'
        ' "tags": [{"key": "ptx-length", "value": "n", "valueType": "LONG"}]} to every VCP',
        "hand sid (and n) to the coordinator; CarbyneStackClient.upload does all of this",
    )

    def as_json(self) -> dict[str, Any]:
        """A JSON-able description (numbers as strings: they exceed 2^53)."""
        return {
            "engine": "carbynestack",
            "prime": str(self.prime),
            "r": str(self.r),
            "rinv": str(self.rinv),
            "amphoraUrls": {str(k): v for k, v in self.amphora_urls.items()},
            "valueRange": [str(self.value_range[0]), str(self.value_range[1])],
            "lengthTag": self.length_tag,
            "steps": list(self.steps),
        }


@dataclass
class _Job:
    program: Program
    task: asyncio.Task[str]
    inputs: list[str] = field(default_factory=list)


class CarbyneStackEngine:
    """Runs the template programs on registered Amphora secrets of one Carbyne Stack cloud."""

    def __init__(self, client: CarbyneStackClient) -> None:
        self.client = client
        self._inputs: dict[str, int] = {}
        self._jobs: dict[str, _Job] = {}

    @property
    def programs(self) -> list[str]:
        """Names of the programs :meth:`run` accepts."""
        return sorted(TEMPLATES)

    @property
    def inputs(self) -> dict[str, int]:
        """Registered secret ids and their lengths, in registration order."""
        return dict(self._inputs)

    def input_plan(self) -> InputPlan:
        """The upload protocol and parameters an input party needs."""
        config = self.client.config
        half = self.client.field.half
        return InputPlan(
            prime=config.prime,
            r=config.r,
            rinv=config.rinv,
            amphora_urls={p.id: p.amphora for p in config.providers},
            value_range=(-half, half),
        )

    async def register_inputs(
        self, secret_ids: Sequence[str], lengths: Sequence[int] | None = None
    ) -> None:
        """Accept input secrets; lengths come from their ``ptx-length`` tags unless given."""
        ids = [_uuid(s) for s in secret_ids]
        if not ids:
            raise ProtocolError.single("secretIds", "at least one secret id is required")
        if len(set(ids)) != len(ids) or any(i in self._inputs for i in ids):
            raise ProtocolError.single("secretIds", "a secret id is registered twice")
        if lengths is None:
            found = await asyncio.gather(*(self.client.length(i) for i in ids))
        else:
            found = list(lengths)
            if len(found) != len(ids) or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in found
            ):
                raise ProtocolError.single("lengths", "one positive length per secret id")
        self._inputs.update(zip(ids, found, strict=True))
        log.info("carbynestack.inputs_registered", count=len(ids))

    async def run(
        self,
        program_name: str,
        params: dict[str, Any] | None = None,
        secret_ids: Sequence[str] | None = None,
    ) -> str:
        """Start ``program_name`` on ``secret_ids`` (default: every registered input, in
        registration order); return the job id, which is also the result secret id."""
        ids = list(self._inputs) if secret_ids is None else [_uuid(s) for s in secret_ids]
        unknown = [i for i in ids if i not in self._inputs]
        if unknown:
            raise ProtocolError(
                "unregistered input secrets",
                400,
                [Problem("secretIds", f"not registered: {i}") for i in unknown],
            )
        program = render(program_name, [self._inputs[i] for i in ids], params)
        job_id = str(uuid.uuid4())
        task = asyncio.create_task(self.client.execute(program.code, ids, game_id=job_id))
        task.add_done_callback(_retrieve)
        self._jobs[job_id] = _Job(program, task, ids)
        log.info("carbynestack.job_started", job_id=job_id, program=program_name)
        return job_id

    def status(self, job_id: str) -> JobStatus:
        """The state of a job started by :meth:`run`."""
        job = self._job(job_id)
        name = job.program.name
        if not job.task.done():
            return JobStatus(job_id, name, JobState.RUNNING)
        exc = None if job.task.cancelled() else job.task.exception()
        if job.task.cancelled() or exc is not None:
            message = exc.message if isinstance(exc, PtxError) else "cancelled or crashed"
            return JobStatus(job_id, name, JobState.FAILED, message)
        return JobStatus(job_id, name, JobState.SUCCEEDED)

    async def wait(self, job_id: str) -> JobStatus:
        """Wait until the job ends (the client's execute timeout bounds it)."""
        job = self._job(job_id)
        await asyncio.wait([job.task])
        return self.status(job_id)

    async def fetch_result(self, job_id: str) -> Result:
        """Wait for the job, read its result secret (integrity-checked) and decode it."""
        job = self._job(job_id)
        secret_id = await job.task  # re-raises the job's PtxError
        elements = await self.client.read_elements(secret_id)
        program = job.program
        if len(elements) != program.output_length:
            raise VcpError(
                f"result of job {job_id} holds {len(elements)} values,"
                f" {program.name} yields {program.output_length}",
                502,
            )
        field = self.client.field
        signed = [from_field(field, x) for x in elements]
        if program.output_kind == "fixed":
            return Result(job_id, program.name, [from_fixed(v, program.frac_bits) for v in signed])
        return Result(job_id, program.name, signed)

    async def delete(self, secret_ids: Sequence[str]) -> None:
        """Delete secrets (inputs or results) at every VCP; forget them here."""
        for sid in secret_ids:
            await self.client.delete(sid)
            self._inputs.pop(_uuid(sid), None)

    async def aclose(self) -> None:
        """Cancel jobs still running."""
        running = [job.task for job in self._jobs.values() if not job.task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}", "jobId")
        return job


def _retrieve(task: asyncio.Task[str]) -> None:
    """Mark a background failure as seen; :meth:`CarbyneStackEngine.status` reports it."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("carbynestack.job_failed", error=type(task.exception()).__name__)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError as exc:
        raise ProtocolError.single("secretIds", "must be UUIDs") from exc
