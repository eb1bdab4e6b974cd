"""Coordination settings and the service object a host process starts and stops.

The gateway's settings carry a ``coordination`` group (this model) and an
``operator_token``; :class:`CoordinationService` turns them into a running coordinator with
its engines, outbound client and deadline sweep.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import structlog
from pydantic import BaseModel, Field

from ptx_chain_node.carbynestack.coordination_engine import CarbyneStackCoordinationEngine
from ptx_chain_node.coordination.deadlines import DeadlineSweep
from ptx_chain_node.coordination.engine import Engine
from ptx_chain_node.coordination.local_engine import LocalTestEngine
from ptx_chain_node.coordination.notify import NotifyPolicy
from ptx_chain_node.coordination.programs import ProgramRegistry, StaticProgramRegistry
from ptx_chain_node.coordination.runner import RunPolicy
from ptx_chain_node.coordination.service import Coordinator, CoordinatorPolicy
from ptx_chain_node.store.database import Database

log = structlog.get_logger(__name__)

#: Engines by name. The MPyC and Carbyne Stack engines register here when they land.
ENGINE_FACTORIES: dict[str, Callable[[], Engine]] = {
    "local": LocalTestEngine,
    # Carbyne Stack: the VCPs' bearer token comes from PTX_CARBYNESTACK_TOKEN.
    "carbynestack": CarbyneStackCoordinationEngine.from_env,
}


class CoordinationSettings(BaseModel):
    """The coordinator: engines, runs, notifications and the deadline sweep."""

    enabled: bool = True
    engines: list[str] = Field(
        default_factory=lambda: ["local"],
        description="engine names; 'local' is the in-process test engine (no confidentiality)",
    )
    sweep_interval: float = Field(5.0, gt=0, description="seconds between deadline sweeps")
    run_timeout: float = Field(3600.0, gt=0)
    run_poll_interval: float = Field(0.5, gt=0)
    run_lease_seconds: float = Field(30.0, gt=0)
    max_run_attempts: int = Field(2, ge=1, description="starts of a run lost by its engine")
    notify_timeout: float = Field(10.0, gt=0, description="per notification attempt")
    notify_deadline: float = Field(3600.0, gt=0, description="retry notifications this long")
    notify_initial_backoff: float = Field(0.5, gt=0)
    notify_max_backoff: float = Field(60.0, gt=0)

    def policy(self) -> CoordinatorPolicy:
        """The coordinator's timing policy from these settings."""
        return CoordinatorPolicy(
            run=RunPolicy(
                lease_seconds=self.run_lease_seconds,
                poll_interval=self.run_poll_interval,
                timeout=self.run_timeout,
                max_attempts=self.max_run_attempts,
                notify_deadline=self.notify_deadline,
            ),
            notify=NotifyPolicy(
                timeout=self.notify_timeout,
                initial_backoff=self.notify_initial_backoff,
                max_backoff=self.notify_max_backoff,
                deadline=self.notify_deadline,
                lease_seconds=max(60.0, self.notify_timeout * 3),
            ),
            sweep_interval=self.sweep_interval,
        )


class _SharedTransport(httpx.AsyncBaseTransport):
    """A transport owned by someone else: closing our client leaves it open."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transport.handle_async_request(request)


class CoordinationService:
    """The coordinator of one process with its engines, outbound client and sweep."""

    def __init__(
        self,
        settings: CoordinationSettings,
        database: Database,
        *,
        operator_token: str | None = None,
        programs: ProgramRegistry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        unknown = [name for name in settings.engines if name not in ENGINE_FACTORIES]
        if unknown:
            raise ValueError(f"coordination.engines: unknown {', '.join(unknown)}")
        self.engines: dict[str, Engine] = {n: ENGINE_FACTORIES[n]() for n in settings.engines}
        self._owned = dict(self.engines)  # closed at stop; engines given to use_engine are not
        # Notifications go only to endpoints registered in the store (never to a URL a
        # request names): the notifier reads the endpoint from the party's record.
        self.http = httpx.AsyncClient(
            transport=_SharedTransport(transport) if transport is not None else None,
            follow_redirects=False,
        )
        self.coordinator = Coordinator(
            database,
            engines=self.engines,
            programs=programs or StaticProgramRegistry(),
            http=self.http,
            operator_token=operator_token,
            policy=settings.policy(),
        )
        self.sweep = DeadlineSweep(self.coordinator, settings.sweep_interval)

    def use_engine(self, engine: Engine) -> None:
        """Serve ``engine`` under its name (embedding and tests; call before start).

        The caller keeps ownership: :meth:`stop` does not close it.
        """
        self._owned.pop(engine.name, None)
        self.engines[engine.name] = engine
        self.coordinator.engines[engine.name] = engine

    async def start(self) -> None:
        """Resume runs and notifications left in the store, then start the sweep."""
        if not self.settings.enabled:
            return
        if "local" in self.engines:
            log.warning("coordination: the 'local' engine has no confidentiality (tests only)")
        if self.coordinator.gate.open:
            log.warning("coordination: no operator_token set; operator routes are open")
        await self.coordinator.start()
        self.sweep.start()

    async def stop(self) -> None:
        """Stop the sweep, runs supervision and deliveries; close the client."""
        await self.sweep.stop()
        await self.coordinator.stop()
        for engine in self._owned.values():
            close = getattr(engine, "close", None)
            if close is not None:
                await close()
        await self.http.aclose()
