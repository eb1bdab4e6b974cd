"""Operator routes: jobs, health, readiness, metrics."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from gateway.runtime import Runtime
from ptx_chain_node import __version__
from ptx_chain_node.errors import AuthError, NotFoundError, ProtocolError
from ptx_chain_node.job import JobState


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def require_admin(request: Request) -> Runtime:
    """The runtime, once the caller proved the admin token (when one is configured)."""
    runtime = _runtime(request)
    token = runtime.settings.admin_token
    if token is None:
        return runtime
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        value.encode(), token.get_secret_value().encode()
    ):
        raise AuthError("admin bearer token required")
    return runtime


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ProtocolError.single(
            f"query.{name}", f"expected an integer from {low} to {high}", 422
        )
    return int(raw)


async def list_jobs(request: Request) -> Response:
    runtime = require_admin(request)
    state_name = request.query_params.get("state")
    state = None
    if state_name is not None:
        try:
            state = JobState(state_name)
        except ValueError:
            allowed = ", ".join(s.value for s in JobState)
            raise ProtocolError.single("query.state", f"expected one of {allowed}", 422) from None
    limit = _int_param(request, "limit", 100, 1, 1000)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    jobs = await runtime.store.list(state=state, limit=limit, offset=offset)
    return JSONResponse({"jobs": [job.summary() for job in jobs]})


async def get_job(request: Request) -> Response:
    runtime = require_admin(request)
    job = await runtime.store.get(request.path_params["job_id"])
    if job is None:
        raise NotFoundError("no such job", "path.job_id")
    return JSONResponse(job.summary())


async def get_job_result(request: Request) -> Response:
    """The result of a finished job (a final node keeps it here)."""
    runtime = require_admin(request)
    job = await runtime.store.get(request.path_params["job_id"], with_data=True)
    if job is None:
        raise NotFoundError("no such job", "path.job_id")
    if job.result is None:
        raise ProtocolError.single("result", f"not available in state {job.state.value}", 409)
    return JSONResponse({"data": job.result.data, "params": job.result.params})


async def health(request: Request) -> Response:
    runtime = _runtime(request)
    store_ok = await runtime.database.ping()
    body = {
        "status": "ok" if store_ok and not runtime.shutting_down else "degraded",
        "version": __version__,
        "store": "ok" if store_ok else "unreachable",
        "shuttingDown": runtime.shutting_down,
    }
    return JSONResponse(body)


async def livez(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime = _runtime(request)
    if runtime.shutting_down:
        return JSONResponse({"status": "shutting down"}, status_code=503)
    if not await runtime.database.ping():
        return JSONResponse({"status": "store unreachable"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    runtime = _runtime(request)
    try:
        counts = await runtime.store.counts()
    except Exception:  # noqa: BLE001 - metrics still render without the gauge
        counts = {}
    return PlainTextResponse(runtime.metrics.render(counts), media_type="text/plain; version=0.0.4")
