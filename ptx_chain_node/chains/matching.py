"""Which chain configuration applies to a request: by target id, else by catalogId.

The target id (``x-ptx-target-id``) is looked up first (no I/O). Otherwise the request's
contract is fetched from the configured contract service (cached) and the catalogId of a
service chain that includes the target selects the configuration. No match is a 404
before the ACK.
"""

from __future__ import annotations

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.chains.config import ChainConfig, ChainFile
from ptx_chain_node.chains.contracts import ContractClient, catalog_ids_for
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.payload import ChainPayload


class NoChainConfig(PtxError):
    """No chain configuration serves this target or its service chain."""

    def __init__(self) -> None:
        message = "no chain configuration for this offering or its service chain"
        super().__init__(message, 404, [Problem("header.x-ptx-target-id", message)])


class ChainMatcher:
    """Finds the configuration of a request among the chains of a :class:`ChainFile`."""

    def __init__(self, chains: ChainFile, contracts: ContractClient | None = None) -> None:
        self.chains = chains
        self.contracts = contracts
        self._by_target = {t: c for c in chains.chains for t in c.target_ids}
        self._by_catalog = {k: c for c in chains.chains for k in c.catalog_ids}

    def by_name(self, name: str) -> ChainConfig | None:
        """The configuration called ``name``."""
        return next((c for c in self.chains.chains if c.name == name), None)

    def by_target(self, target_id: str) -> ChainConfig | None:
        """The configuration listing ``target_id`` (pure lookup)."""
        return self._by_target.get(target_id)

    def by_catalog_ids(self, catalog_ids: list[str]) -> ChainConfig | None:
        """The configuration of the first of ``catalog_ids`` that has one."""
        for catalog_id in catalog_ids:
            if catalog_id in self._by_catalog:
                return self._by_catalog[catalog_id]
        return None

    async def match(self, context: ChainContext, payload: ChainPayload | None) -> ChainConfig:
        """The configuration of a request; :class:`NoChainConfig` (404) when none applies."""
        found = self.by_target(context.target_id)
        if found is not None:
            return found
        contract_url = (payload.contract if payload is not None else None) or context.contract_url
        if self.contracts is None or not self._by_catalog or not contract_url:
            raise NoChainConfig()
        if not self.contracts.allowed(contract_url):
            raise NoChainConfig()
        contract = await self.contracts.contract(contract_url)
        found = self.by_catalog_ids(catalog_ids_for(contract, context.target_id))
        if found is None:
            raise NoChainConfig()
        return found
