"""A party's own client for a ``carbynestack`` collaboration: the coordinator around
:mod:`.party`.

What ``ptx-chain-node client upload|result|serve`` do when the collaboration's engine is
Carbyne Stack (the MPyC counterpart is :mod:`ptx_chain_node.mpc.upload`):

- **upload** (:meth:`CarbyneStackPartyClient.upload`): the program is resolved with this
  client's own catalogue (the coordinator's built-ins plus the histogram) and its hash must
  equal the coordinator's (409 otherwise, or when the engine cannot run it); the compute
  config comes from the coordinator; :func:`.party.upload_columns` secret-shares one secret per
  input column at every VCP (masks checked, nothing posted on a failed check, earlier columns
  deleted when a later one fails); only then are the secret ids and the row count confirmed
  to the coordinator (with ``--approve``, the program hash too). Any failure before the
  confirmation confirms nothing.
- **result** (:meth:`CarbyneStackPartyClient.result`): the result ids from the coordinator
  (the output party's token), each result secret read from every VCP and checked
  (``w = s·r``, ``u = v·r``), decoded by :func:`.party.result_of` into column units.

The VCP bearer token is the party's own (never the coordinator's, never logged): one token
for every VCP or a JSON object ``{"<provider id>": "<token>"}`` (:func:`parse_vcp_token`).
TLS verification towards the VCPs is the injected HTTP client's, not the compute config's
``noSslValidation``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
from pydantic import ValidationError

from ptx_chain_node.carbynestack.client import CarbyneStackClient
from ptx_chain_node.carbynestack.config import ComputeConfig
from ptx_chain_node.carbynestack.coordination_engine import ENGINE_NAME
from ptx_chain_node.carbynestack.coordination_programs import HISTOGRAM_PROGRAM, steps
from ptx_chain_node.carbynestack.party import result_of, upload_columns
from ptx_chain_node.coordination.collaboration import Collaboration, ProgramRef
from ptx_chain_node.coordination.programs import BUILTIN_PROGRAMS, StaticProgramRegistry
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.coordinator_client import CoordinatorClient
from ptx_chain_node.mpc.rows import Columns

#: The programs this client recomputes hashes of: the coordinator's built-ins + histogram.
_CATALOGUE = StaticProgramRegistry([*BUILTIN_PROGRAMS, HISTOGRAM_PROGRAM])

VcpToken = str | Mapping[int, str]


def parse_vcp_token(text: str) -> VcpToken:
    """One bearer token for every VCP, or a JSON object ``{"<provider id>": "<token>", …}``."""
    text = text.strip()
    if not text.startswith("{"):
        if not text:
            raise ValueError("the VCP bearer token is empty")
        return text
    try:
        doc = json.loads(text)
    except ValueError:
        raise ValueError("VCP tokens: not a JSON object") from None
    if not isinstance(doc, dict) or not all(
        str(k).isdigit() and isinstance(v, str) and v for k, v in doc.items()
    ):
        raise ValueError('VCP tokens: expected {"<provider id>": "<token>", …}')
    return {int(k): v for k, v in doc.items()}


def _timestamp(value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return value
    return datetime.fromisoformat(str(value)).timestamp()


def definition_of(view: Mapping[str, Any]) -> Collaboration:
    """The collaboration definition behind the coordinator's native view (502 if malformed)."""
    fields = {name: view[name] for name in Collaboration.model_fields if name in view}
    try:
        fields["deadline"] = _timestamp(view.get("deadline"))
        fields["created_at"] = _timestamp(view.get("created_at")) or 0.0
        return Collaboration.model_validate(fields)
    except (ValidationError, ValueError) as exc:
        message = f"the coordinator's collaboration is malformed ({type(exc).__name__})"
        raise PtxError(message, 502, [Problem("collaboration", message)]) from None


def checked_program(collaboration: Collaboration) -> str:
    """The program's sha256 as this client recomputes it; 409 when it differs from the
    coordinator's or the engine cannot run the program."""
    program = collaboration.program
    ref = ProgramRef(name=program.name, version=program.version, parameters=program.parameters)
    try:
        resolved = _CATALOGUE.resolve(ref, collaboration.input_specification)
        steps(collaboration)
    except PtxError as exc:
        message = f"program {ref.name}@{ref.version} on {ENGINE_NAME}: {exc.message}"
        raise PtxError(message, 409, [Problem("program", message)]) from None
    if resolved.sha256 != program.sha256:
        message = "the coordinator's program hash differs from this client's catalogue"
        raise PtxError(message, 409, [Problem("program.sha256", message)])
    return resolved.sha256


def json_value(value: Any) -> Any:
    """A decoded result value as JSON: exact decimals as strings (integers as numbers),
    fixed-point fractions as floats, lists element-wise."""
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else str(value)
    return value


class CarbyneStackPartyClient:
    """One party's uploads and results for ``carbynestack`` collaborations.

    ``coordinator`` carries the party's coordinator token; ``vcp_token`` is its own bearer
    token at the VCPs; VCP calls go through ``http`` (bounded by ``timeout`` each).
    """

    def __init__(
        self,
        coordinator: CoordinatorClient,
        http: httpx.AsyncClient,
        vcp_token: VcpToken,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.coordinator = coordinator
        self.http = http
        self._vcp_token = vcp_token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"CarbyneStackPartyClient(coordinator={self.coordinator.url!r}, vcp_token=***)"

    def _vcps(self, config: Mapping[str, Any]) -> CarbyneStackClient:
        try:
            parsed = ComputeConfig.parse(dict(config))
        except PtxError as exc:
            message = f"the collaboration's compute config is invalid: {exc.message}"
            raise PtxError(message, 502, exc.problems) from None
        return CarbyneStackClient(parsed, self.http, self._vcp_token, timeout=self.timeout)

    async def upload(
        self, view: Mapping[str, Any], party_id: str, columns: Columns, *, approve: bool = False
    ) -> dict[str, Any]:
        """Share ``columns`` at the VCPs, then confirm them; the receipt (with secret ids)."""
        collaboration = definition_of(view)
        sha256 = checked_program(collaboration)
        vcps = self._vcps(await self.coordinator.compute_config(collaboration.id))
        secret_ids, rows = await upload_columns(vcps, collaboration, columns)
        confirmation = await self.coordinator.confirm_upload(
            collaboration.id, party_id, secret_ids, rows, sha256 if approve else None
        )
        return {
            "collaboration_id": collaboration.id,
            "party_id": party_id,
            "engine": ENGINE_NAME,
            "secret_ids": secret_ids,
            "rows": rows,
            "vcps": len(vcps.config.providers),
            "program_sha256": sha256,
            "approved": approve,
            "state": confirmation.get("state"),
        }

    async def result(self, view: Mapping[str, Any], party_id: str) -> dict[str, Any]:
        """The result ids from the coordinator, read, checked and decoded from the VCPs."""
        collaboration = definition_of(view)
        sha256 = checked_program(collaboration)
        results = await self.coordinator.results(collaboration.id)
        result_ids = [str(i) for i in results.get("result_ids") or []]
        decoded = await result_of(
            self._vcps(collaboration.compute_config), collaboration, result_ids
        )
        program = collaboration.program
        return {
            "collaboration_id": collaboration.id,
            "party_id": party_id,
            "engine": ENGINE_NAME,
            "program": {"name": program.name, "version": program.version, "sha256": sha256},
            "result_ids": result_ids,
            "result": {name: json_value(v) for name, v in decoded.items()},
        }
