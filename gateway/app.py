"""The gateway's ASGI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import chain_parties, coordinator, node_grants, operations, upstream
from gateway.errors import HANDLERS
from gateway.openapi import openapi_document
from gateway.request_context import RequestContextMiddleware
from gateway.resource import ResourceEndpoint
from gateway.runtime import Runtime, tune_garbage_collection
from gateway.settings import Settings, load_settings
from ptx_chain_node import logs
from ptx_chain_node.processor import Processor


def create_app(
    settings: Settings | None = None,
    *,
    processors: dict[str, Processor] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    configure_logging: bool = True,
) -> Starlette:
    """Build the gateway app. ``processors`` and ``transport`` are for embedding and tests."""
    settings = settings or load_settings()
    if configure_logging:
        logs.configure(settings.log_level, json=settings.log_json)
    runtime = Runtime(settings, processors=processors, transport=transport)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    async def openapi(_request: Request) -> Response:
        return JSONResponse(openapi_document(settings))

    routes: list[BaseRoute] = [
        Route(r.path, ResourceEndpoint(r), methods=["POST", "PUT"], name=f"resource:{r.name}")
        for r in settings.resources
    ]
    routes += [
        Route("/jobs", operations.list_jobs, methods=["GET"]),
        Route("/jobs/{job_id}", operations.get_job, methods=["GET"]),
        Route("/jobs/{job_id}/result", operations.get_job_result, methods=["GET"]),
        Route("/health", operations.health, methods=["GET"]),
        Route("/livez", operations.livez, methods=["GET"]),
        Route("/readyz", operations.readyz, methods=["GET"]),
        Route("/metrics", operations.metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    routes += coordinator.ROUTES + node_grants.ROUTES + upstream.ROUTES + chain_parties.ROUTES
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app


def app_from_environment() -> Starlette:
    """Factory for ``uvicorn gateway.app:app_from_environment --factory`` (PTX_* env)."""
    import os
    from pathlib import Path

    config = os.environ.get("PTX_CONFIG")
    app = create_app(load_settings(Path(config) if config else None))
    tune_garbage_collection()
    return app
