"""Operator route: register a thread's party ahead of its chain (inputs by reference).

``POST /chains/{name}/parties`` with ``{"chain_id", "party_id", "retry"?}`` and the
coordinator's operator bearer token calls :meth:`MpcProcessor.register_reference` on the
processor of the ``mpc`` resource whose chain file configures ``name`` (the first one, when
several do). 201 with ``{computation: {collaboration_id, token}}``: the party's own tokens
for ``ptx-chain-node client upload``. 404 for an unknown configuration, 422 for a party
that is not one of its thread parties, 409 once the party uploaded.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.coordinator import bearer, coordinator_of, json_body
from gateway.runtime import Runtime
from ptx_chain_node.chain import MAX_HEADER_LENGTH
from ptx_chain_node.chains.config import ChainConfig
from ptx_chain_node.chains.processor import MpcProcessor
from ptx_chain_node.coordination.collaboration import parse_model
from ptx_chain_node.errors import Problem, PtxError

PATH = "/chains/{name}/parties"


class ReferencePartyBody(BaseModel):
    """Which chain (by its chainId) and which of its thread parties to register."""

    model_config = ConfigDict(extra="forbid")

    chain_id: str = Field(
        min_length=1,
        max_length=MAX_HEADER_LENGTH,
        description="the chain's x-ptx-service-chain-id, byte for byte",
    )
    party_id: str = Field(min_length=1, max_length=200, description="a thread party's id")
    retry: int = Field(0, ge=0, le=10**6, description="the job's retry number (0: first run)")


def chain_config(runtime: Runtime, name: str) -> tuple[MpcProcessor, ChainConfig]:
    """The ``mpc`` processor configuring the chain called ``name``, and that configuration."""
    for resource in runtime.resources.values():
        processor = runtime.processor_for(resource.name)
        if isinstance(processor, MpcProcessor):
            config = processor.matcher.by_name(name)
            if config is not None:
                return processor, config
    message = f"no chain configuration '{name}'"
    raise PtxError(message, 404, [Problem("path.name", message)])


async def register_party(request: Request) -> Response:
    """Register a party in the chain's collaborations; its tokens per computation."""
    coordinator_of(request).gate.require(bearer(request))
    body = parse_model(ReferencePartyBody, await json_body(request))
    processor, config = chain_config(request.app.state.runtime, request.path_params["name"])
    tokens = await processor.register_reference(config, body.chain_id, body.party_id, body.retry)
    return JSONResponse(tokens, status_code=201)


ROUTES: list[BaseRoute] = [Route(PATH, register_party, methods=["POST"])]


def chain_party_paths() -> dict[str, Any]:
    """The OpenAPI path item of the route."""
    error = {
        "description": "error: {code, message, errors: [{field, problem}]}",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    grant = {
        "type": "object",
        "properties": {"collaboration_id": {"type": "string"}, "token": {"type": "string"}},
        "required": ["collaboration_id", "token"],
    }
    created = {
        "description": "per computation: the collaboration and the party's token",
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": grant}}
        },
    }
    operation = {
        "summary": "Register a thread's party ahead of its chain, to upload by reference "
        "(operator)",
        "tags": ["chains"],
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "chain configuration name",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReferencePartyBody.model_json_schema()}},
        },
        "responses": {"201": created, **{str(c): error for c in (400, 401, 404, 409, 422)}},
    }
    return {PATH: {"post": operation}}
