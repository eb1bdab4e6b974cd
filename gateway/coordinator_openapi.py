"""The OpenAPI path items of the coordinator routes: native (``/v1/collaborations``) and
upstream-compatible (:mod:`gateway.upstream`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.coordinator import PREFIX, ApprovalBody, OutputPartyBody, UploadBody
from gateway.upstream import C
from ptx_chain_node.coordination.collaboration import CollaborationRequest


def coordinator_paths() -> dict[str, Any]:
    """OpenAPI path items of the native and the upstream-compatible coordinator routes."""

    def schema(model: type[BaseModel]) -> dict[str, Any]:
        return {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }

    err = {
        "description": "error: {code, message, errors: [{field, problem}]}",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }

    def op(summary: str, status: int, *codes: int, **extra: Any) -> dict[str, Any]:
        ok = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
        responses: dict[str, Any] = {str(status): ok}
        responses.update({str(c): err for c in codes})
        return {"summary": summary, "tags": ["coordinator"], "responses": responses, **extra}

    c = PREFIX + "/{cid}"
    paths: dict[str, Any] = {
        PREFIX: {
            "post": op(
                "Create a collaboration (operator)",
                201,
                400,
                401,
                422,
                requestBody=schema(CollaborationRequest),
            ),
            "get": op("Collaborations, newest first", 200, 422),
        },
        c: {
            "get": op("One collaboration", 200, 404),
            "delete": op(
                "Delete a collaboration that is not running (operator)", 204, 401, 404, 409
            ),
        },
        c + "/status": {"get": op("State and party counts", 200, 404)},
        c + "/compute-config": {
            "get": op("Compute config for uploads (a party)", 200, 401, 403, 404)
        },
        c + "/parties": {"get": op("Parties (a party or the operator)", 200, 401, 403, 404)},
        c + "/input-parties/{pid}": {
            "post": op(
                "Register an input party: token (once), specification, program and hash",
                201,
                401,
                403,
                404,
                409,
            ),
            "delete": op(
                "Withdraw an input party (itself or the operator)", 204, 401, 403, 404, 409
            ),
        },
        c + "/input-parties/{pid}/approval": {
            "post": op(
                "Approve the program hash (the party)",
                200,
                401,
                403,
                404,
                409,
                422,
                requestBody=schema(ApprovalBody),
            ),
        },
        c + "/input-parties/{pid}/upload": {
            "post": op(
                "Confirm an upload (the party; idempotent)",
                200,
                401,
                403,
                404,
                409,
                422,
                requestBody=schema(UploadBody),
            ),
        },
        c + "/output-parties/{pid}": {
            "post": op(
                "Register an output party (operator): token and notify secret",
                201,
                401,
                404,
                409,
                422,
                requestBody=schema(OutputPartyBody),
            ),
        },
        c + "/results": {"get": op("Result secret ids (output parties)", 200, 401, 403, 404, 409)},
        c + "/notifications": {"get": op("Deliveries and attempts (operator)", 200, 401, 404)},
    }
    paths.update(upstream_paths())
    return paths


def upstream_paths() -> dict[str, Any]:
    """OpenAPI path items of the compatible routes (see :mod:`gateway.upstream`)."""
    err = {"description": "error", "content": {"application/json": {"schema": _UPSTREAM_ERROR}}}
    ok = {"description": "ok", "content": {"application/json": {"schema": {}}}}

    def op(summary: str, *codes: int, **extra: Any) -> dict[str, Any]:
        responses: dict[str, Any] = {"200": ok}
        responses.update({str(c): err for c in codes})
        return {"summary": summary, "tags": ["upstream"], "responses": responses, **extra}

    multipart = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "mpc_program", "number_of_parties"],
                    "properties": {
                        "name": {"type": "string"},
                        "mpc_program": {
                            "type": "string",
                            "format": "binary",
                            "description": "catalogue reference: JSON or name@version",
                        },
                        "cs_config": {"type": "string", "format": "binary"},
                        "csv_header_line": {"type": "string"},
                        "input_specification": {"type": "string", "description": "JSON"},
                        "number_of_parties": {"type": "integer"},
                        "engine": {"type": "string"},
                        "deadline": {"type": "string", "format": "date-time"},
                    },
                }
            }
        },
    }
    secret_ids = {
        "required": True,
        "content": {"application/json": {"schema": {"type": "array", "items": {"type": "string"}}}},
    }
    endpoint_param = {
        "name": "party_client_endpoint",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "format": "uri"},
    }
    register_in = op("Register an input party (208 when repeated)", 401, 403, 404, 409)
    register_out = op(
        "Register an output party (operator)", 400, 401, 404, 409, parameters=[endpoint_param]
    )
    confirm = op("Confirm an upload (idempotent)", 401, 403, 404, 409, 422, requestBody=secret_ids)
    return {
        "/ping": {"get": op("Liveness (upstream)")},
        "/sys_status": {"get": op("Store and collaboration counts", 503)},
        "/collaboration": {
            "post": op("Create (operator; multipart)", 400, 401, 422, requestBody=multipart),
            "get": op("All collaborations"),
        },
        C: {"get": op("One collaboration", 404), "delete": op("Delete (operator)", 401, 404, 409)},
        C + "/register-input-party/{pid}": {
            "post": register_in,
            "put": register_in,
            "delete": op("Unregister an input party", 401, 403, 404, 409),
        },
        C + "/register-output-party/{pid}": {"post": register_out, "put": register_out},
        C + "/input-parties": {"get": op("Input parties (a party or the operator)", 401, 403)},
        C + "/confirm-upload/{pid}": {"post": confirm, "put": confirm},
        "/confirm-upload/{cid}/{pid}": {"post": confirm, "put": confirm},
        C + "/result_ids": {
            "get": op("Result secret ids (output parties)", 401, 403, 404, 409, 500)
        },
        C + "/compute_config": {"get": op("Compute configuration for uploads", 401, 403, 404)},
        C + "/compute-config": {"get": op("Compute configuration for uploads", 401, 403, 404)},
    }


_UPSTREAM_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
}
