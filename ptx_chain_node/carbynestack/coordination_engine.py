"""Carbyne Stack as a coordination engine: the coordinator's ``Engine`` over the VCPs.

The coordinator (:mod:`ptx_chain_node.coordination`) never sees data or shares; with this
engine (name ``carbynestack``) a collaboration runs on a Carbyne Stack cloud:

- ``validate_config``: the collaboration's ``compute_config`` is a Carbyne Stack compute
  config (:class:`~.config.ComputeConfig`), normalised to the upstream shape
  ``{prime, r, rinv, noSslValidation, providers: [...]}`` with the big numbers as decimal
  strings (as the Carbyne Stack CLI writes them);
- ``input_plan``: that compute config, which upstream clients expect;
  :class:`~.client.CarbyneStackClient` uploads with it;
- ``register_inputs``: an input party confirms **one secret per input column**, in the
  order of the input specification. Each secret must be held by *every* VCP, carry the
  same ``ptx-length`` tag there, and hold ``rows`` values; a secret belongs to one
  collaboration only;
- ``run``: one activation per selected column of the MP-SPDZ template of the program
  (``sum``, ``mean``, ``histogram``: see :mod:`~.coordination_programs`). The result of
  a column is the Amphora secret whose id is the activation's gameID, derived from the
  run id (a repeated ``run`` for a known run id does nothing);
- ``status``/``fetch_result``: the run's background task; a failure carries the VCP's
  reason (e.g. ``VCP 2: unreachable (ConnectError)``);
- ``delete``: the collaboration's input and result secrets at every VCP.

Values are the columns' encoded integers (a ``fixed`` column as ``value * 10**scale``, a
``categorical`` one as the category index); the output party reads a result secret with
its own client and decodes it with :func:`~.coordination_programs.result_values`.

The engine authenticates at the VCPs with its own bearer token (``PTX_CARBYNESTACK_TOKEN``
for :meth:`CarbyneStackCoordinationEngine.from_env`, the registry's factory). What it
remembers (secret owners, runs) lives in memory: after a restart the coordinator starts a
lost run again, but ``delete`` no longer knows the secrets of earlier collaborations.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import structlog

from ptx_chain_node.carbynestack.client import LENGTH_TAG, CarbyneStackClient
from ptx_chain_node.carbynestack.config import ComputeConfig, Provider
from ptx_chain_node.carbynestack.coordination_programs import steps
from ptx_chain_node.carbynestack.templates import render
from ptx_chain_node.carbynestack.vcps import answer_json, vcp_problem
from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.engine import PartyInput, RunStatus
from ptx_chain_node.coordination.run_tasks import RunTasks
from ptx_chain_node.errors import Problem, ProtocolError, PtxError

log = structlog.get_logger(__name__)

ENGINE_NAME = "carbynestack"
#: Environment variable holding the engine's bearer token for every VCP.
TOKEN_ENV = "PTX_CARBYNESTACK_TOKEN"  # noqa: S105 - the name of a variable
_GAME_NAMESPACE = uuid.UUID("6f1c2b8e-4d0a-5e3b-9c71-2a8f0d4e6b15")


class CarbyneStackCoordinationEngine:
    """The coordination ``Engine`` named ``carbynestack`` (see the module docstring).

    ``token`` is the engine's bearer token for every VCP (or provider id -> token);
    ``transport`` replaces the network (tests: ``FakeCarbyneStack.transport()``).
    """

    name = ENGINE_NAME

    def __init__(
        self,
        token: str | Mapping[int, str],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        execute_timeout: float = 600.0,
        application: str | None = None,
    ) -> None:
        if isinstance(token, str) and not token:
            raise ValueError("the Carbyne Stack engine needs a bearer token")
        self._token = token
        self._transport = transport
        self.timeout = timeout
        self.execute_timeout = execute_timeout
        self.application = application
        self._http: dict[bool, httpx.AsyncClient] = {}
        self._owners: dict[str, str] = {}  # secret id -> collaboration id
        self._results: dict[str, list[str]] = {}  # collaboration id -> result secret ids
        self._configs: dict[str, ComputeConfig] = {}  # collaboration id -> its cloud
        self._runs = RunTasks(_reason)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CarbyneStackCoordinationEngine:
        """The engine with the token of ``PTX_CARBYNESTACK_TOKEN`` (ValueError if unset)."""
        token = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
        if not token:
            raise ValueError(f"engine {ENGINE_NAME}: set {TOKEN_ENV} to the VCPs' bearer token")
        return cls(token)

    # -- the Engine protocol --------------------------------------------------------------

    def validate_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The compute config in the upstream shape; 422 naming ``compute_config.<field>``."""
        try:
            parsed = ComputeConfig.parse(dict(config))
            self._client(parsed)  # the token must cover every provider
        except ProtocolError as exc:
            problems = [Problem(f"compute_config.{p.field}", p.problem) for p in exc.problems]
            raise PtxError("invalid Carbyne Stack compute config", 422, problems) from None
        return _config_json(parsed)

    async def input_plan(self, collaboration: Collaboration) -> dict[str, Any]:
        """The compute config upstream clients upload with."""
        return _config_json(ComputeConfig.parse(collaboration.compute_config))

    async def register_inputs(self, collaboration: Collaboration, upload: PartyInput) -> None:
        """Check that the secrets exist at every VCP with the confirmed length; claim them."""
        activations = steps(collaboration)  # refuses programs this engine cannot run
        columns = collaboration.input_specification.columns
        if len(upload.secret_ids) != len(columns):
            message = f"expected one secret per input column ({len(columns)}), in column order"
            raise PtxError(
                "upload does not match the engine", 422, [Problem("secret_ids", message)]
            )
        problems: list[Problem] = []
        ids: list[str] = []
        for index, secret_id in enumerate(upload.secret_ids):
            try:
                ids.append(str(uuid.UUID(secret_id)))
            except ValueError:
                problems.append(Problem(f"secret_ids.{index}", "not an Amphora secret id (UUID)"))
                continue
            owner = self._owners.get(ids[-1])
            if owner not in (None, collaboration.id):
                problems.append(Problem(f"secret_ids.{index}", "secret belongs to another run"))
        if problems:
            raise PtxError("upload does not match the stored secrets", 422, problems)
        client = self._client_for(collaboration)
        found = await asyncio.gather(*(_length(client, i) for i in ids))
        for index, (length, problem) in enumerate(found):
            if problem is not None:
                problems.append(Problem(f"secret_ids.{index}", problem))
            elif upload.rows is not None and length != upload.rows:
                problems.append(
                    Problem(f"secret_ids.{index}", f"holds {length} values, not {upload.rows}")
                )
        lengths = {length for length, problem in found if problem is None}
        if not problems and len(lengths) > 1:
            problems.append(Problem("secret_ids", "the column secrets differ in length"))
        if problems:
            raise PtxError("upload does not match the stored secrets", 422, problems)
        for step in activations:  # the program must render for these lengths (e.g. histogram edges)
            try:
                render(step.template, [found[step.column][0]], step.params)
            except ProtocolError as exc:
                raise PtxError(exc.message, 422, [Problem("program", exc.message)]) from None
            step.check_range(found[step.column][0])
        for secret_id in ids:
            self._owners[secret_id] = collaboration.id
        log.info("carbynestack.inputs_confirmed", collaboration_id=collaboration.id, count=len(ids))

    async def run(
        self, run_id: str, collaboration: Collaboration, inputs: Sequence[PartyInput]
    ) -> None:
        """Start the activations in the background (nothing new for a known ``run_id``)."""
        work = self._execute(run_id, collaboration, list(inputs))
        if not self._runs.start(run_id, collaboration.id, work, _retrieve):
            return
        log.info("carbynestack.run_started", collaboration_id=collaboration.id, run_id=run_id)

    async def status(self, run_id: str) -> RunStatus | None:
        """Running, done, or failed with the reason; None for a run this process never ran."""
        return self._runs.status(run_id)

    async def fetch_result(self, run_id: str) -> list[str]:
        """The result secret ids (one per column), in the order of the selected columns."""
        return self._runs.result(run_id)

    async def delete(self, collaboration_id: str) -> None:
        """Cancel the collaboration's runs and delete its input and result secrets."""
        self._runs.forget(collaboration_id)
        secrets = [s for s, owner in self._owners.items() if owner == collaboration_id]
        secrets += self._results.pop(collaboration_id, [])
        config = self._configs.pop(collaboration_id, None)
        for secret_id in secrets:
            self._owners.pop(secret_id, None)
        if config is None:
            return
        client = self._client(config)
        for secret_id in secrets:
            try:
                await client.delete(secret_id)
            except PtxError as exc:
                log.warning("carbynestack.delete_failed", secret_id=secret_id, error=exc.message)

    async def close(self) -> None:
        """Cancel runs still going and close the HTTP clients."""
        await self._runs.cancel_all()
        for http in self._http.values():
            await http.aclose()
        self._http.clear()

    # -- running --------------------------------------------------------------------------

    async def _execute(
        self, run_id: str, collaboration: Collaboration, inputs: list[PartyInput]
    ) -> list[str]:
        if not inputs:
            raise PtxError("no confirmed inputs to compute on", 409)
        client = self._client_for(collaboration)
        results: list[str] = []
        for step in steps(collaboration):
            ids = [party.secret_ids[step.column] for party in inputs]
            try:
                found = await asyncio.gather(*(_length(client, i) for i in ids))
                missing = [problem for _, problem in found if problem is not None]
                if missing:
                    raise PtxError(f"input secret {missing[0]}", 409)
                step.check_range(sum(length for length, _ in found))
                program = render(step.template, [length for length, _ in found], step.params)
                game_id = str(uuid.uuid5(_GAME_NAMESPACE, f"{run_id}/{step.column}"))
                results.append(await client.execute(program.code, ids, game_id=game_id))
            except PtxError as exc:
                message = f"{step.template} of column {step.name}: {exc.message}"
                raise PtxError(message, exc.status) from exc
            self._results.setdefault(collaboration.id, []).append(results[-1])
        log.info("carbynestack.run_done", collaboration_id=collaboration.id, run_id=run_id)
        return results

    # -- clients --------------------------------------------------------------------------

    def _client(self, config: ComputeConfig) -> _VcpClient:
        verify = not config.no_ssl_validation
        http = self._http.get(verify)
        if http is None:
            http = httpx.AsyncClient(transport=self._transport, verify=verify)
            self._http[verify] = http
        return _VcpClient(
            config,
            http,
            self._token,
            timeout=self.timeout,
            execute_timeout=self.execute_timeout,
            application=self.application,
        )

    def _client_for(self, collaboration: Collaboration) -> _VcpClient:
        config = self._configs.get(collaboration.id)
        if config is None:
            config = ComputeConfig.parse(collaboration.compute_config)
            self._configs[collaboration.id] = config
        return self._client(config)


class _VcpClient(CarbyneStackClient):
    """The client plus a per-VCP existence check of a secret."""

    async def length_everywhere(self, secret_id: str) -> int:
        """The ``ptx-length`` of a secret, which every VCP must hold with the same tag.

        Raises :class:`LookupError` (with the reason) when the secret is missing or
        inconsistent, :class:`VcpError`/:class:`AuthError` when a VCP fails.
        """
        answers = await asyncio.gather(
            *(self._tags_at(p, secret_id) for p in self.config.providers)
        )
        missing = [
            p.id for p, tags in zip(self.config.providers, answers, strict=True) if tags is None
        ]
        if missing:
            raise LookupError(f"is not held by VCP {', '.join(map(str, missing))}")
        lengths = {_length_tag(tags or []) for tags in answers}
        if len(lengths) != 1:
            raise LookupError("has different ptx-length tags at the VCPs")
        (length,) = lengths
        if length is None:
            raise LookupError(f"has no {LENGTH_TAG} tag (upload with CarbyneStackClient)")
        return length

    async def _tags_at(self, provider: Provider, secret_id: str) -> list[Any] | None:
        url = f"{provider.amphora}/secret-shares/{secret_id}/tags"
        response = await self.vcps.get_if_present(provider, url)
        if response is None:
            return None
        body = answer_json(provider, response)
        if not isinstance(body, list):
            raise vcp_problem(provider, "tags answer is not a list")
        return body


def _config_json(config: ComputeConfig) -> dict[str, Any]:
    """The upstream compute config; prime, r and rinv as decimal strings (past 2**53)."""
    doc = config.as_json()
    for key in ("prime", "r", "rinv"):
        doc[key] = str(doc[key])
    return doc


async def _length(client: _VcpClient, secret_id: str) -> tuple[int, str | None]:
    """``(length, None)``, or ``(0, why)`` when the secret is missing or inconsistent."""
    try:
        return await client.length_everywhere(secret_id), None
    except LookupError as exc:
        return 0, str(exc)


def _length_tag(tags: Sequence[Any]) -> int | None:
    for tag in tags:
        if isinstance(tag, dict) and tag.get("key") == LENGTH_TAG:
            value = str(tag.get("value", ""))
            return int(value) if value.isdigit() and int(value) > 0 else None
    return None


def _reason(exc: BaseException) -> str:
    """A failure reason for the coordinator: the error's message, never values."""
    return exc.message if isinstance(exc, PtxError) else f"engine error: {type(exc).__name__}"


def _retrieve(task: asyncio.Task[list[str]]) -> None:
    """Mark a background failure as seen; :meth:`status` reports it."""
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        log.warning("carbynestack.run_failed", error=_reason(exc))
