"""The compute node's HTTP API (``ptx-chain-node node``): a thin shell over ComputeNode.

Routes (every one but ``/health`` needs a bearer token of :mod:`ptx_chain_node.mpc.node_tokens`):

- ``PUT /v1/shares/{secret_id}``: an input party's share vector (upload token); 201 new,
  200 identical repeat, 401 bad token (nothing stored), 409 other content under that id;
- ``GET /v1/shares/{secret_id}``: what is stored (coordinator; never values);
- ``POST /v1/runs``: start this node's party of a run (coordinator); 202;
- ``GET /v1/runs/{run_id}``, ``POST /v1/runs/{run_id}/cancel`` (coordinator);
- ``GET /v1/results/{result_id}``: this node's result shares (output party's result token);
- ``DELETE /v1/collaborations/{collaboration_id}`` (coordinator): forget everything.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import HANDLERS
from gateway.request_context import RequestContextMiddleware
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.node import ComputeNode
from ptx_chain_node.mpc.node_tokens import Scope
from ptx_chain_node.mpc.share_store import RunRecord

MAX_BODY = 64 * 1024 * 1024


def _node(request: Request) -> ComputeNode:
    node: ComputeNode = request.app.state.node
    return node


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def _json(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise PtxError("body too large", 413, [Problem("body", f"at most {MAX_BODY} bytes")])
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PtxError("body is not JSON", 400, [Problem("body", "not valid JSON")]) from None


def run_view(record: RunRecord) -> dict[str, Any]:
    """A run as the API shows it."""
    return {
        "run_id": record.run_id,
        "collaboration_id": record.collaboration_id,
        "state": record.state.value,
        "error": record.error,
        "result_id": record.run_id if record.has_result else None,
    }


async def health(request: Request) -> Response:
    node = _node(request)
    return JSONResponse({"status": "ok", "index": node.index, "m": node.config.m})


async def put_shares(request: Request) -> Response:
    node = _node(request)
    secret_id = request.path_params["secret_id"]
    # A bad token is refused before the body is read; upload() checks it again against the
    # collaboration and party the body names.
    node.tokens.verify(_bearer(request), Scope.UPLOAD)
    info, created = await node.upload(_bearer(request), secret_id, await _json(request))
    return JSONResponse(info.to_json(), status_code=201 if created else 200)


async def get_shares(request: Request) -> Response:
    info = await _node(request).share_info(_bearer(request), request.path_params["secret_id"])
    return JSONResponse(info.to_json())


async def post_run(request: Request) -> Response:
    record = await _node(request).start_run(_bearer(request), await _json(request))
    return JSONResponse(run_view(record), status_code=202)


async def get_run(request: Request) -> Response:
    record = await _node(request).run_status(_bearer(request), request.path_params["run_id"])
    return JSONResponse(run_view(record))


async def cancel_run(request: Request) -> Response:
    record = await _node(request).cancel_run(_bearer(request), request.path_params["run_id"])
    return JSONResponse(run_view(record))


async def get_result(request: Request) -> Response:
    doc = await _node(request).result(_bearer(request), request.path_params["result_id"])
    return JSONResponse(doc)


async def delete_collaboration(request: Request) -> Response:
    await _node(request).delete_collaboration(_bearer(request), request.path_params["cid"])
    return Response(status_code=204)


def create_node_app(node: ComputeNode) -> Starlette:
    """The ASGI app of one compute node (starts and stops the node with its lifespan)."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await node.start()
        try:
            yield
        finally:
            await node.stop()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/v1/shares/{secret_id}", put_shares, methods=["PUT"]),
            Route("/v1/shares/{secret_id}", get_shares, methods=["GET"]),
            Route("/v1/runs", post_run, methods=["POST"]),
            Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
            Route("/v1/results/{result_id}", get_result, methods=["GET"]),
            Route("/v1/collaborations/{cid}", delete_collaboration, methods=["DELETE"]),
        ],
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.node = node
    return app
