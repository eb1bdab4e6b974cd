"""The running services behind the gateway's routes, started and stopped with the app."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import structlog

from gateway.settings import ResourceSettings, Settings
from ptx_chain_node.coordination.config import CoordinationService
from ptx_chain_node.egress import AllowedHostsTransport
from ptx_chain_node.intake import AckLedger, JobIntake
from ptx_chain_node.metrics import Metrics
from ptx_chain_node.mpc.engine import MpycEngine
from ptx_chain_node.mpc.registry import CatalogueRegistry
from ptx_chain_node.processor import Processor
from ptx_chain_node.resume import PDCClient
from ptx_chain_node.store import Database, JobStore
from ptx_chain_node.summary import SummaryProcessor
from ptx_chain_node.worker import Worker, WorkerSettings

log = structlog.get_logger(__name__)

#: Built-in processors by name; the MPC processor registers itself here as well.
BUILTIN_PROCESSORS: dict[str, Callable[[], Processor]] = {"summary": SummaryProcessor}


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
        self.intake = JobIntake(self.store)
        self.egress = AllowedHostsTransport([settings.pdc_url], transport)
        self.http = httpx.AsyncClient(transport=self.egress)
        self.pdc = PDCClient(settings.pdc_url, self.http, timeout=settings.resume.timeout)
        self.resources = {r.name: r for r in settings.resources}
        self._processors: dict[str, Processor] = dict(processors or {})
        for resource in settings.resources:
            if resource.processor not in self._processors:
                factory = BUILTIN_PROCESSORS.get(resource.processor)
                if factory is None:
                    raise ValueError(
                        f"resources[{resource.name}].processor: unknown '{resource.processor}'"
                    )
                self._processors[resource.processor] = factory()
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
        operator = settings.operator_token
        self.coordination = CoordinationService(
            settings.coordination,
            self.database,
            operator_token=operator.get_secret_value() if operator else None,
            programs=CatalogueRegistry(),
            transport=transport,
        )
        # The MPyC engine over the configured compute nodes (serve fills in local ones).
        self.nodes_http: httpx.AsyncClient | None = None
        if settings.mpyc.enabled and settings.mpyc.nodes:
            self.nodes_http = httpx.AsyncClient()
            self.coordination.use_engine(MpycEngine.from_settings(settings.mpyc, self.nodes_http))
        self.shutting_down = False

    def processor_for(self, resource_name: str) -> Processor:
        resource: ResourceSettings = self.resources[resource_name]
        return self._processors[resource.processor]

    async def start(self) -> None:
        await self.database.migrate()
        if self.database.is_sqlite:
            # A SQLite file belongs to one process: leases left by a dead one are void.
            released = await self.store.release_all()
            if released:
                log.info("released stale leases", count=released)
        await self.coordination.start()
        self.intake.start()
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
        await self.http.aclose()
        await self.database.dispose()
        log.info("gateway stopped")
