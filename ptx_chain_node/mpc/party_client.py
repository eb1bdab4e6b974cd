"""A party's own client of the coordinator, for collaborations on either engine.

:class:`PartyClient` reads the collaboration and dispatches on its ``engine``:

- ``mpyc``: pre-aggregate, Shamir-split and upload to the compute nodes, read result shares
  (:mod:`ptx_chain_node.mpc.upload`);
- ``carbynestack``: one secret per input column, masked at every VCP, result secrets read and
  checked at every VCP (:mod:`ptx_chain_node.carbynestack.coordinated_party`), with the
  party's own VCP bearer token (without one such a collaboration is refused, 503).

Either way the rows are checked against the input specification here, no plaintext leaves
the process, and the coordinator is told only secret ids and the row count, after the upload
succeeded. ``ptx-chain-node client upload|result`` and the client service
(:mod:`.client_service`) use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ptx_chain_node.carbynestack.coordinated_party import CarbyneStackPartyClient, VcpToken
from ptx_chain_node.coordination.collaboration import InputSpec
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.coordinator_client import CoordinatorClient
from ptx_chain_node.mpc.rows import Columns, read_file
from ptx_chain_node.mpc.upload import result_of, upload_columns

MPYC = "mpyc"
CARBYNESTACK = "carbynestack"
#: Environment variable of a party's bearer token at the Carbyne Stack VCPs.
VCP_TOKEN_ENV = "PTX_VCP_TOKEN"  # noqa: S105 - the variable's name


class PartyClient:
    """Calls of one party (coordinator ``token``) to the coordinator and the compute layer.

    ``vcp_token`` is the party's bearer token at Carbyne Stack VCPs (a string, or provider
    id -> token); None when the party takes part in MPyC collaborations only.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        coordinator_url: str,
        token: str,
        *,
        vcp_token: VcpToken | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.http = http
        self.coordinator = CoordinatorClient(http, coordinator_url, token, timeout)
        self._carbynestack = (
            CarbyneStackPartyClient(self.coordinator, http, vcp_token, timeout=timeout)
            if vcp_token
            else None
        )

    def __repr__(self) -> str:
        return f"PartyClient(coordinator={self.coordinator.url!r})"

    async def collaboration(self, collaboration_id: str) -> dict[str, Any]:
        """The coordinator's view of the collaboration."""
        return await self.coordinator.collaboration(collaboration_id)

    def _engine(self, view: dict[str, Any]) -> str:
        engine = str(view.get("engine"))
        if engine not in (MPYC, CARBYNESTACK):
            message = f"collaboration uses engine {engine!r}; this client speaks mpyc, carbynestack"
            raise PtxError(message, 409, [Problem("engine", message)])
        if engine == CARBYNESTACK and self._carbynestack is None:
            message = f"no VCP bearer token configured for engine carbynestack (${VCP_TOKEN_ENV})"
            raise PtxError(message, 503, [Problem("engine", message)])
        return engine

    def _vcp_party(self) -> CarbyneStackPartyClient:
        assert self._carbynestack is not None  # checked by _engine
        return self._carbynestack

    async def upload(
        self,
        collaboration_id: str,
        party_id: str,
        columns: Columns | None = None,
        *,
        path: Path | None = None,
        approve: bool = False,
        secret_id: str | None = None,
        view: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Upload one party's rows (``columns`` or a CSV/JSON file) and confirm; the receipt.

        ``secret_id`` (MPyC only) is the id to upload under; ``view`` is the collaboration
        when the caller already fetched it.
        """
        view = view if view is not None else await self.collaboration(collaboration_id)
        engine = self._engine(view)
        if engine == MPYC:
            receipt = await upload_columns(
                self.coordinator,
                self.http,
                collaboration_id,
                party_id,
                columns,
                path=path,
                approve=approve,
                secret_id=secret_id,
            )
            return {**receipt, "engine": MPYC}
        if secret_id is not None:
            message = "a carbynestack upload is one new secret per column; omit the secret id"
            raise PtxError(message, 422, [Problem("secret_id", message)])
        if columns is None:
            if path is None:
                raise ValueError("give columns or a path")
            columns = read_file(InputSpec.model_validate(view["input_specification"]), path)
        return await self._vcp_party().upload(view, party_id, columns, approve=approve)

    async def result(self, collaboration_id: str, party_id: str) -> dict[str, Any]:
        """The output party's result, reconstructed or read and checked locally."""
        view = await self.collaboration(collaboration_id)
        if self._engine(view) == MPYC:
            result = await result_of(self.coordinator, self.http, collaboration_id, party_id)
            return {**result, "engine": MPYC}
        return await self._vcp_party().result(view, party_id)
