"""The running services behind the gateway's routes, started and stopped with the app."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import structlog

from gateway.settings import ResourceSettings, Settings
from ptx_chain_node.carbynestack.coordination_engine import ENGINE_NAME as CARBYNESTACK
from ptx_chain_node.carbynestack.coordination_engine import TOKEN_ENV as CARBYNESTACK_TOKEN_ENV
from ptx_chain_node.carbynestack.coordination_programs import HISTOGRAM_PROGRAM
from ptx_chain_node.chains.carbynestack import CarbyneStackUploads
from ptx_chain_node.chains.config import ChainFile, engine_problems, load_chain_file
from ptx_chain_node.chains.contracts import ContractClient
from ptx_chain_node.chains.matching import ChainMatcher
from ptx_chain_node.chains.processor import MpcProcessor
from ptx_chain_node.chains.uploads import EngineUploads, MpycUploads
from ptx_chain_node.coordination.config import CoordinationService
from ptx_chain_node.coordination.programs import BUILTIN_PROGRAMS, StaticProgramRegistry
from ptx_chain_node.egress import AllowedHostsTransport
from ptx_chain_node.errors import PtxError
from ptx_chain_node.intake import AckLedger, intake_for
from ptx_chain_node.metrics import Metrics
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.registry import CatalogueRegistry
from ptx_chain_node.processor import Processor, Validator, validator_of
from ptx_chain_node.resume import PDCClient
from ptx_chain_node.store import Database, JobStore
from ptx_chain_node.summary import SummaryProcessor
from ptx_chain_node.worker import Worker, WorkerSettings

log = structlog.get_logger(__name__)

#: Built-in processors by name; ``mpc`` is built per resource from its chain file.
BUILTIN_PROCESSORS: dict[str, Callable[[], Processor]] = {"summary": SummaryProcessor}


def tune_garbage_collection() -> None:
    """Collector settings for a long-running server process, once its app is built.

    The objects made by imports and start-up (over 100 000) live as long as the process:
    freezing them keeps full collections from walking them again and again (in the ACK
    benchmark those took about a tenth of the event loop's time). A request keeps its
    objects alive while it waits for its commit, so at the default threshold (700) young
    collections ran about 150 times a second and moved them to older generations; at
    10 000 they are mostly freed by reference counting first. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def chain_engines(settings: Settings) -> set[str]:
    """The engines chain configurations can use with these settings (``config check``)."""
    engines = set()
    if settings.mpyc.enabled and (settings.mpyc.nodes or settings.mpyc.local_nodes):
        engines.add("mpyc")
    if settings.coordination.enabled and CARBYNESTACK in settings.coordination.engines:
        engines.add(CARBYNESTACK)
    return engines


class Runtime:
    """Store, intake, worker and outbound client of one gateway process."""

    def __init__(
        self,
        settings: Settings,
        *,
        processors: dict[str, Processor] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.database = Database(settings.store_url)
        self.store = JobStore(self.database)
        self.metrics = Metrics()
        self.acks = AckLedger()
        self.intake = intake_for(self.database, self.store)
        self.egress = AllowedHostsTransport([settings.pdc_url], transport)
        self.http = httpx.AsyncClient(transport=self.egress)
        self.pdc = PDCClient(settings.pdc_url, self.http, timeout=settings.resume.timeout)
        self.resources = {r.name: r for r in settings.resources}
        operator = settings.operator_token
        self.coordination = CoordinationService(
            settings.coordination,
            self.database,
            operator_token=operator.get_secret_value() if operator else None,
            programs=CatalogueRegistry(
                StaticProgramRegistry([*BUILTIN_PROGRAMS, HISTOGRAM_PROGRAM])
            ),
            transport=transport,
        )
        # The MPyC engine over the configured compute nodes (serve fills in local ones).
        self.nodes_http: httpx.AsyncClient | None = None
        self.mpyc: MpycUploads | None = None
        if settings.mpyc.enabled and settings.mpyc.nodes:
            self.nodes_http = httpx.AsyncClient()
            engine = MpycEngine.from_settings(settings.mpyc, self.nodes_http)
            self.coordination.use_engine(engine)
            self.mpyc = MpycUploads(engine, self.nodes_http)
        self._closing: list[httpx.AsyncClient] = []
        given = dict(processors or {})
        self._processors: dict[str, Processor] = {}
        self._shared: dict[str, Processor] = {}
        for resource in settings.resources:
            self._processors[resource.name] = self._processor(resource, given, transport)
        self._validators = {
            name: found
            for name, processor in self._processors.items()
            if (found := validator_of(processor)) is not None
        }
        self.worker = Worker(
            self.store,
            self.processor_for,
            self.pdc,
            settings.resume,
            settings=WorkerSettings(
                concurrency=settings.worker.concurrency,
                lease_seconds=settings.worker.lease_seconds,
                poll_interval=settings.worker.poll_interval,
            ),
            acks=self.acks,
            metrics=self.metrics,
        )
        self.shutting_down = False

    def _processor(
        self,
        resource: ResourceSettings,
        given: dict[str, Processor],
        transport: httpx.AsyncBaseTransport | None,
    ) -> Processor:
        if resource.processor in given:
            return given[resource.processor]
        if resource.processor == "mpc":
            return self._mpc_processor(resource, transport)
        factory = BUILTIN_PROCESSORS.get(resource.processor)
        if factory is None:
            raise ValueError(
                f"resources[{resource.name}].processor: unknown '{resource.processor}'"
            )
        shared = self._shared.get(resource.processor)
        if shared is None:
            shared = self._shared[resource.processor] = factory()
        return shared

    def _mpc_processor(
        self, resource: ResourceSettings, transport: httpx.AsyncBaseTransport | None
    ) -> Processor:
        assert resource.chains is not None  # the settings require it
        try:
            chains = load_chain_file(Path(resource.chains))
            uploads = self._chain_uploads(chains)
            problems = engine_problems(chains, uploads)
            if problems:
                raise PtxError("engines not configured", 400, problems)
        except PtxError as exc:
            details = "; ".join(f"{p.field}: {p.problem}" for p in exc.problems)
            raise ValueError(f"resources[{resource.name}].chains: {details}") from None
        contracts = None
        if chains.contract_services:
            http = httpx.AsyncClient(
                transport=AllowedHostsTransport(chains.contract_services, transport)
            )
            self._closing.append(http)
            contracts = ContractClient(
                http,
                chains.contract_services,
                ttl=chains.contract_cache_seconds,
                timeout=chains.contract_timeout,
            )
        operator = self.settings.operator_token
        return MpcProcessor(
            ChainMatcher(chains, contracts),
            self.coordination.coordinator,
            uploads,
            operator_token=operator.get_secret_value() if operator else None,
            run_allowance=self.settings.mpyc.run_timeout + 60.0,
        )

    def _chain_uploads(self, chains: ChainFile) -> dict[str, EngineUploads]:
        """The upload and result path of each engine the chains can use here."""
        uploads: dict[str, EngineUploads] = {}
        if self.mpyc is not None:
            uploads["mpyc"] = self.mpyc
        used = [c for c in chains.chains if c.engine == CARBYNESTACK]
        if used and CARBYNESTACK in self.coordination.engines:
            # The gateway uploads its threads with the engine's VCP token; TLS checks are
            # off only when a chain's compute config says noSslValidation.
            insecure = any(c.compute_config.get("noSslValidation") is True for c in used)
            http = httpx.AsyncClient(verify=not insecure)
            self._closing.append(http)
            token = os.environ.get(CARBYNESTACK_TOKEN_ENV, "")
            uploads[CARBYNESTACK] = CarbyneStackUploads(http, token)
        return uploads

    def processor_for(self, resource_name: str) -> Processor:
        return self._processors[resource_name]

    def validator_for(self, resource_name: str) -> Validator | None:
        """The pre-ACK validation hook of a resource's processor (None: nothing to call)."""
        return self._validators.get(resource_name)

    async def start(self) -> None:
        await self.database.migrate()
        if self.database.is_sqlite:
            # A SQLite file belongs to one process: leases left by a dead one are void.
            released = await self.store.release_all()
            if released:
                log.info("released stale leases", count=released)
        await self.coordination.start()
        await self.intake.start()
        if self.settings.worker.enabled:
            self.worker.start()
        log.info(
            "gateway started",
            pdc_url=self.settings.pdc_url,
            store=self.database.engine.dialect.name,
        )

    async def stop(self) -> None:
        self.shutting_down = True
        await self.intake.stop()
        await self.worker.stop()
        await self.coordination.stop()
        if self.nodes_http is not None:
            await self.nodes_http.aclose()
        for client in self._closing:
            await client.aclose()
        await self.http.aclose()
        await self.database.dispose()
        log.info("gateway stopped")
