"""The Carbyne Stack engine in chain steps: configuration checks, uploads and results.

:func:`carbynestack_problems` checks a ``carbynestack`` chain configuration: its
``compute_config`` (the upstream shape) and its computations (``sum``, ``mean``,
``histogram``, version ``1``, as the engine runs them; see
:mod:`ptx_chain_node.carbynestack.coordination_programs`).

:class:`CarbyneStackUploads` is the engine's side of a chain step (see :mod:`.uploads`). A
thread's typed rows become one Amphora secret per input column (the engine's input
convention, :mod:`ptx_chain_node.carbynestack.party`): the gateway, as the thread party's
client, fetches input masks from every VCP of the collaboration's compute config, checks
``w = s·r`` and ``u = v·r`` (corrupted masks are refused before anything is posted) and
posts the masked inputs to every VCP. The engine's templates work on rows, so the rows are
uploaded as such (no pre-aggregation). The result secrets (one per selected column) are
read the same way, checked, and decoded into column units: one column gives the program's
single value (a histogram: its bins ``[a, b)``), several give ``{column: value}``.

Every VCP call carries the gateway's bearer token (``PTX_CARBYNESTACK_TOKEN``, the same as
the coordination engine's); tokens and values never reach logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from itertools import pairwise
from typing import Any

import httpx

from ptx_chain_node.carbynestack.client import CarbyneStackClient
from ptx_chain_node.carbynestack.config import ComputeConfig
from ptx_chain_node.carbynestack.coordination_engine import ENGINE_NAME
from ptx_chain_node.carbynestack.coordination_programs import HISTOGRAM_PROGRAM, PROGRAMS, steps
from ptx_chain_node.carbynestack.party import result_of, upload_columns
from ptx_chain_node.chains.config import ChainConfig
from ptx_chain_node.chains.records import ThreadRows
from ptx_chain_node.chains.uploads import Computed, Upload
from ptx_chain_node.coordination.collaboration import Collaboration
from ptx_chain_node.coordination.programs import BUILTIN_PROGRAMS, StaticProgramRegistry
from ptx_chain_node.coordination.records import CollaborationRecord
from ptx_chain_node.errors import Problem, ProtocolError, PtxError
from ptx_chain_node.mpc.encoding import EncodedColumns

#: The programs a carbynestack chain can run, as the coordinator's registry resolves them.
REGISTRY = StaticProgramRegistry(
    [*(p for p in BUILTIN_PROGRAMS if p.name in PROGRAMS), HISTOGRAM_PROGRAM]
)


def carbynestack_problems(index: int, chain: ChainConfig) -> list[Problem]:
    """The problems of chain ``index`` (engine ``carbynestack``): compute config, programs."""
    where = f"chains[{index}]"
    problems: list[Problem] = []
    try:
        ComputeConfig.parse(chain.compute_config)
    except ProtocolError as exc:
        problems += [Problem(f"{where}.compute_config.{p.field}", p.problem) for p in exc.problems]
    spec = chain.input.spec()
    for j, computation in enumerate(chain.computations):
        at = f"{where}.computations[{j}]"
        try:
            program = REGISTRY.resolve(computation.ref(), spec)
            steps(
                Collaboration(
                    id=f"{chain.name}/{computation.name}",
                    name=computation.name,
                    program=program,
                    input_specification=spec,
                    input_parties=[],
                    number_of_parties=1,
                    min_parties=1,
                    allow_partial_run=False,
                    deadline=None,
                    engine=ENGINE_NAME,
                    compute_config=chain.compute_config,
                    registration="operator",
                    approval="on_confirm",
                    created_at=0.0,
                )
            )
        except PtxError as exc:
            details = exc.problems or [Problem("program", exc.message)]
            problems += [
                Problem(f"{at}.{p.field.removeprefix('program.')}", p.problem) for p in details
            ]
    return problems


def _plain(value: object) -> object:
    """A mean's exact fraction as a float (JSON); other values unchanged."""
    return float(value) if isinstance(value, Fraction) else value


def computed(program: str, parameters: Mapping[str, Any], decoded: dict[str, Any]) -> Computed:
    """Names and values of a decoded result (pure): see the module docstring."""
    if len(decoded) == 1:
        (value,) = decoded.values()
        if program == "histogram":
            edges = parameters["edges"]
            return Computed([f"[{a}, {b})" for a, b in pairwise(edges)], list(value))
        return Computed([program], [_plain(value)])
    return Computed(list(decoded), [_plain(v) for v in decoded.values()])


class CarbyneStackUploads:
    """The Carbyne Stack path over one injected ``httpx.AsyncClient`` and a VCP token."""

    engine = ENGINE_NAME

    def __init__(
        self,
        http: httpx.AsyncClient,
        token: str | Mapping[int, str],
        *,
        timeout: float = 30.0,
    ) -> None:
        self.http = http
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return "CarbyneStackUploads(token=***)"

    def _client(self, record: CollaborationRecord) -> CarbyneStackClient:
        config = ComputeConfig.parse(record.definition.compute_config)
        return CarbyneStackClient(config, self.http, self._token, timeout=self.timeout)

    async def upload(
        self,
        record: CollaborationRecord,
        party_id: str,
        rows: ThreadRows,
        encoded: EncodedColumns,
    ) -> Upload:
        """One secret per input column, masked with checked masks from every VCP."""
        del party_id  # the secrets carry no party; the coordinator binds them at confirmation
        del encoded  # every column is uploaded as rows, encoded by the upload itself
        secret_ids, count = await upload_columns(
            self._client(record), record.definition, rows.columns
        )
        return Upload(secret_ids, count)

    async def result(self, record: CollaborationRecord) -> Computed:
        """The result secrets read (and checked) at every VCP, decoded."""
        definition = record.definition
        decoded = await result_of(self._client(record), definition, record.result_ids or [])
        return computed(definition.program.name, definition.program.parameters, decoded)
