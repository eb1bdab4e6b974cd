"""JSON Schemas of the protocol models and the OpenAPI document, as checked into ``schemas/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gateway.openapi import openapi_document
from gateway.settings import Settings
from ptx_chain_node.chain import ChainContext
from ptx_chain_node.messages import Ack, ErrorBody, JobSummary, ResumeRequest, SyncAnswer
from ptx_chain_node.payload import AdditionalData, ChainPayload, MergedData

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "chain-context": ChainContext,
    "chain-payload": ChainPayload,
    "merged-data": MergedData,
    "additional-data": AdditionalData,
    "ack": Ack,
    "resume-request": ResumeRequest,
    "sync-answer": SyncAnswer,
    "error": ErrorBody,
    "job-summary": JobSummary,
}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def generated() -> dict[str, str]:
    """File name -> content of every generated schema file."""
    files = {
        f"{name}.schema.json": render(model.model_json_schema(by_alias=True))
        for name, model in SCHEMA_MODELS.items()
    }
    files["openapi.json"] = render(openapi_document(Settings()))
    return files


def drift(directory: Path) -> list[str]:
    """Names of files in ``directory`` that differ from the models (or are missing)."""
    stale = []
    for name, content in generated().items():
        path = directory / name
        if not path.exists() or path.read_text() != content:
            stale.append(name)
    return stale


def write(directory: Path) -> list[str]:
    """Write every schema file; return the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = generated()
    for name, content in files.items():
        (directory / name).write_text(content)
    return sorted(files)
