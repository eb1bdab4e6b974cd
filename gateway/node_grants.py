"""Coordinator routes handing parties their MPyC node tokens (see ptx_chain_node.mpc.grants).

- ``GET /v1/collaborations/{cid}/input-parties/{pid}/node-token``: upload token;
- ``GET /v1/collaborations/{cid}/output-parties/{pid}/node-token``: result token.

Both need the party's own bearer token.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.coordinator import PREFIX, bearer, coordinator_of
from ptx_chain_node.coordination.records import Role
from ptx_chain_node.mpc.grants import node_token


async def input_token(request: Request) -> Response:
    grant = await node_token(
        coordinator_of(request),
        request.path_params["cid"],
        Role.INPUT,
        request.path_params["pid"],
        bearer(request),
    )
    return JSONResponse(grant, headers={"cache-control": "no-store"})


async def output_token(request: Request) -> Response:
    grant = await node_token(
        coordinator_of(request),
        request.path_params["cid"],
        Role.OUTPUT,
        request.path_params["pid"],
        bearer(request),
    )
    return JSONResponse(grant, headers={"cache-control": "no-store"})


ROUTES: list[BaseRoute] = [
    Route(PREFIX + "/{cid}/input-parties/{pid}/node-token", input_token, methods=["GET"]),
    Route(PREFIX + "/{cid}/output-parties/{pid}/node-token", output_token, methods=["GET"]),
]
