"""HTTP routes of the simulated PDC: a small dispatch on method and path.

See :mod:`ptx_chain_node.testing.pdc` for what each route means.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ptx_chain_node.testing.asgi import (
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    decoded_headers,
    read_body,
    send_json,
)
from ptx_chain_node.testing.chainspec import ChainSpec
from ptx_chain_node.testing.records import DataRequest, ResumeOutcome, ResumeRecord

if TYPE_CHECKING:
    from ptx_chain_node.testing.pdc import SimulatedPDC

RESUME_PATH = "/service-chain/resume"
STEP_PATH = "/_sim/service-chain/step"
CHAINS_PATH = "/_sim/chains"
STATE_PATH = "/_sim/state"
DATA_PREFIX = "/data/"
RESUMED = {"message": "Node resumed successfully"}


async def dispatch(pdc: SimulatedPDC, scope: Scope, receive: Receive, send: Send) -> None:
    """Route one HTTP request."""
    method, path = scope["method"], scope["path"]
    if method == "POST" and path == RESUME_PATH:
        await _resume(pdc, scope, receive, send)
    elif method == "POST" and path == STEP_PATH:
        await _json_route(pdc, scope, receive, send, _accept_step)
    elif method == "POST" and path == CHAINS_PATH:
        await _json_route(pdc, scope, receive, send, _start_chain)
    elif method == "GET" and path == STATE_PATH:
        await send_json(send, 200, _state(pdc))
    elif method == "GET" and path.startswith(DATA_PREFIX):
        name = path[len(DATA_PREFIX) :]
        pdc.data_requests.append(DataRequest(name, decoded_headers(scope)))
        if name not in pdc.served_data:
            await send_json(send, 404, {"error": f"no data resource {name!r}"})
        else:
            await send_json(send, 200, pdc.served_data[name])
    else:
        await send_json(send, 404, {"error": f"no route {method} {path}"})


async def _resume(pdc: SimulatedPDC, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        raw = await read_body(scope, receive, pdc.config.body_limit)
    except BodyTooLarge:
        pdc.resumes.append(ResumeRecord(None, None, None, None, ResumeOutcome.TOO_LARGE, 413))
        await send_json(send, 413, {"error": "request entity too large"})
        return
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        record = ResumeRecord(None, None, None, None, ResumeOutcome.BAD_REQUEST, 400)
        record.error = repr(exc)
        pdc.resumes.append(record)
        await send_json(send, 400, {"error": "invalid JSON body"})
        return
    host_uri = body.get("hostURI")
    try:
        await pdc.resume(
            body.get("chainId"),
            body.get("targetId"),
            body.get("data"),
            body.get("params"),
            host_uri=host_uri if isinstance(host_uri, str) else None,
        )
    except Exception as exc:  # noqa: BLE001 (any failure is a 500, as in Express)
        await send_json(send, 500, {"error": str(exc) or repr(exc)})
        return
    await send_json(send, 200, RESUMED)


async def _json_route(
    pdc: SimulatedPDC, scope: Scope, receive: Receive, send: Send, handler: Any
) -> None:
    try:
        raw = await read_body(scope, receive, pdc.config.body_limit)
    except BodyTooLarge:
        await send_json(send, 413, {"error": "request entity too large"})
        return
    try:
        body = json.loads(raw)
    except ValueError:
        await send_json(send, 400, {"error": "invalid JSON body"})
        return
    try:
        status, answer = await handler(pdc, body)
    except (ValidationError, KeyError, TypeError, ValueError) as exc:
        status, answer = 400, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001 (any failure is a 500, as in Express)
        pdc.errors.append(f"{scope['path']}: {exc!r}")
        status, answer = 500, {"error": repr(exc)}
    await send_json(send, status, answer)


async def _accept_step(pdc: SimulatedPDC, body: dict[str, Any]) -> tuple[int, Any]:
    spec = ChainSpec.model_validate(body["spec"])
    chain_id, index, data = str(body["chainId"]), int(body["index"]), body.get("data")
    if "previousNodeParams" in body:
        await pdc.accept_step(spec, chain_id, index, data, body["previousNodeParams"])
    else:
        await pdc.accept_step(spec, chain_id, index, data)
    return 200, {"message": "step accepted"}


async def _start_chain(pdc: SimulatedPDC, body: dict[str, Any]) -> tuple[int, Any]:
    chain_id = await pdc.start_chain(ChainSpec.model_validate(body))
    return 200, {"chainId": chain_id}


def _state(pdc: SimulatedPDC) -> dict[str, Any]:
    def dump(records: list[Any]) -> list[dict[str, Any]]:
        rows = []
        for record in records:
            row = asdict(record)
            row.pop("raw_body", None)
            rows.append(row)
        return rows

    return {
        "resourceCalls": dump(pdc.resource_calls),
        "resumes": dump(pdc.resumes),
        "outputs": dump(pdc.outputs),
        "dataRequests": dump(pdc.data_requests),
        "errors": list(pdc.errors),
        "chains": {
            cid: {str(i): s.state.value for i, s in run.steps.items()}
            for cid, run in pdc.chains.items()
        },
    }
