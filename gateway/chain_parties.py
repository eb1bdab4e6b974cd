"""Operator routes of a chain step for parties that upload with their own client.

Both take the coordinator's operator bearer token and act on the processor of the ``mpc``
resource whose chain file configures ``name`` (the first one, when several do); 404 for
an unknown configuration.

- ``POST /chains/{name}/parties`` with ``{"chain_id", "party_id", "retry"?}`` registers a
  thread's party ahead of its chain (inputs by reference,
  :meth:`MpcProcessor.register_reference`). 201 with ``{computation: {collaboration_id,
  token}}``: the party's own tokens for ``ptx-chain-node client upload``. 422 for a party
  that is not one of its thread parties, 409 once the party uploaded.
- ``GET /chains/{name}/collaborations?chain_id=…[&retry=N]`` looks up the step's
  collaborations (:func:`~ptx_chain_node.chains.step_collaborations.step_collaborations`):
  ``{computation: {collaboration_id, state}}``, ``state`` null while not created. The
  operator hands the ids to an external input party. 422 naming ``query.chain_id`` when it
  is missing.
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
from ptx_chain_node.chains.step_collaborations import step_collaborations
from ptx_chain_node.coordination.collaboration import parse_model
from ptx_chain_node.coordination.states import CollabState
from ptx_chain_node.errors import Problem, PtxError

PATH = "/chains/{name}/parties"
COLLABORATIONS_PATH = "/chains/{name}/collaborations"


class ChainStep(BaseModel):
    """Which step of a chain: its chainId and the job's retry number."""

    model_config = ConfigDict(extra="forbid")

    chain_id: str = Field(
        min_length=1,
        max_length=MAX_HEADER_LENGTH,
        description="the chain's x-ptx-service-chain-id, byte for byte",
    )
    retry: int = Field(0, ge=0, le=10**6, description="the job's retry number (0: first run)")


class ReferencePartyBody(ChainStep):
    """Which chain (by its chainId) and which of its thread parties to register."""

    party_id: str = Field(min_length=1, max_length=200, description="a thread party's id")


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


async def list_collaborations(request: Request) -> Response:
    """The step's collaboration ids and states, per computation (nothing is created)."""
    coordinator = coordinator_of(request)
    coordinator.gate.require(bearer(request))
    step = parse_model(ChainStep, dict(request.query_params), prefix="query")
    _, config = chain_config(request.app.state.runtime, request.path_params["name"])
    found = await step_collaborations(coordinator.store, config, step.chain_id, step.retry)
    return JSONResponse(found)


ROUTES: list[BaseRoute] = [
    Route(PATH, register_party, methods=["POST"]),
    Route(COLLABORATIONS_PATH, list_collaborations, methods=["GET"]),
]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The fields of ``model`` as OpenAPI query parameters."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": field.pop("description", ""),
            "schema": field,
        }
        for name, field in schema["properties"].items()
    ]


def chain_party_paths() -> dict[str, Any]:
    """The OpenAPI path items of the routes."""
    error = {
        "description": "error: {code, message, errors: [{field, problem}]}",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "chain configuration name",
        "schema": {"type": "string"},
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
    register = {
        "summary": "Register a thread's party ahead of its chain, to upload by reference "
        "(operator)",
        "tags": ["chains"],
        "parameters": [name],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ReferencePartyBody.model_json_schema()}},
        },
        "responses": {"201": created, **{str(c): error for c in (400, 401, 404, 409, 422)}},
    }
    found = {
        "type": "object",
        "properties": {
            "collaboration_id": {"type": "string"},
            "state": {
                "anyOf": [{"enum": [s.value for s in CollabState]}, {"type": "null"}],
                "description": "null while the collaboration was not created",
            },
        },
        "required": ["collaboration_id", "state"],
    }
    listed = {
        "description": "per computation: the collaboration id and its state",
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": found}}
        },
    }
    lookup = {
        "summary": "The collaboration ids and states of a chain step, to hand to external "
        "input parties (operator)",
        "tags": ["chains"],
        "parameters": [name, *_query_parameters(ChainStep)],
        "responses": {"200": listed, **{str(c): error for c in (401, 404, 422)}},
    }
    return {PATH: {"post": register}, COLLABORATIONS_PATH: {"get": lookup}}
