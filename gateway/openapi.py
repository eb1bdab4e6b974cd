"""The OpenAPI document of the gateway, built from the pydantic models it speaks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.chain_parties import chain_party_paths
from gateway.coordinator_openapi import coordinator_paths
from gateway.settings import Settings
from ptx_chain_node import __version__
from ptx_chain_node.messages import Ack, ErrorBody, JobSummary, ResumeRequest, SyncAnswer
from ptx_chain_node.payload import ChainPayload, MergedData

COMPONENT_MODELS: list[type[BaseModel]] = [
    ChainPayload,
    MergedData,
    Ack,
    SyncAnswer,
    ErrorBody,
    JobSummary,
    ResumeRequest,
]

CHAIN_HEADERS = [
    ("x-ptx-service-chain-id", True, "Chain id; opaque, echoed byte for byte in the resume"),
    ("x-ptx-target-id", True, "This node's service-offering URI"),
    ("x-ptx-service-chain-next-target", False, "Next offering; absent on the final node"),
    ("x-ptx-service-chain-previous-target", False, "The pre-chain (additional data) source"),
    ("x-ptx-incomingDataspaceConnectorURI", False, "The consumer's PDC"),
    ("x-ptx-dataExchangeId", False, "Data exchange id"),
    ("x-ptx-contractId", False, "Contract id"),
    ("x-ptx-contractURL", False, "Contract URL"),
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json(ErrorBody, "error") for code in codes}


def _resource_operation(name: str, mode: str) -> dict[str, Any]:
    ok = (
        _json(SyncAnswer, "the result (adapter mode)")
        if mode == "sync"
        else _json(Ack, "stored; the chain will be resumed")
    )
    return {
        "summary": f"Chain delivery to resource '{name}'",
        "description": "Body: the PDC wrapper, the {origin, additionalData} merge form, or bare "
        "data; JSON even under text/plain.",
        "parameters": [
            {
                "name": h,
                "in": "header",
                "required": req,
                "description": d,
                "schema": {"type": "string"},
            }
            for h, req, d in CHAIN_HEADERS
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _ref(ChainPayload)},
                "text/plain": {"schema": _ref(ChainPayload)},
            },
        },
        "responses": {"200": ok, **_errors(400, 401, 404, 413, 422, 503)},
    }


def _get(summary: str, ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": ok, **_errors(*codes)}}}


def openapi_document(settings: Settings) -> dict[str, Any]:
    """OpenAPI 3.1 for the configured resources and the operator routes."""
    _, defs = models_json_schema(
        [(m, "validation") for m in COMPONENT_MODELS], ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, Any] = {}
    for resource in settings.resources:
        operation = _resource_operation(resource.name, resource.mode)
        paths[resource.path] = {"post": operation, "put": operation}
    job_list = {
        "description": "jobs",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"jobs": {"type": "array", "items": _ref(JobSummary)}},
                }
            }
        },
    }
    plain = {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}
    paths["/jobs"] = _get("Jobs, newest first (never their data)", job_list, 401, 422)
    paths["/jobs/{job_id}"] = _get("One job", _json(JobSummary, "the job"), 401, 404)
    paths["/jobs/{job_id}/result"] = _get(
        "A job's result", _json(SyncAnswer, "result"), 401, 404, 409
    )
    paths["/health"] = _get("Health summary", plain)
    paths["/livez"] = _get("Liveness", plain)
    paths["/readyz"] = _get(
        "Readiness: 503 while the store is unreachable or shutting down", plain, 503
    )
    paths["/metrics"] = _get(
        "Prometheus metrics",
        {
            "description": "exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    )
    paths.update(coordinator_paths())
    paths.update(chain_party_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "ptx-chain-node gateway", "version": __version__},
        "paths": paths,
        "components": {"schemas": defs.get("$defs", {})},
    }
