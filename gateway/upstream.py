"""Upstream-compatible coordinator routes (the implemented API of the upstream service).

Paths, bodies and the status codes clients depend on follow upstream, with these
deliberate differences:

- ``{cid}`` is our collaboration UUID (upstream: int32). Any other value is a 404.
- Creating and deleting need the operator bearer token, output-party registration too; a
  party's calls need the token it got at registration (``token`` in the answer), and
  ``result_ids`` answers only output parties.
- ``mpc_program`` is a catalogue reference (JSON ``{"name", "version", "parameters"}`` or
  ``name@version``), never program source. The program's sha256 is returned at registration;
  confirming an upload approves it (or send ``x-ptx-program-sha256`` to approve explicitly).
- Bad input answers 4xx (upstream: 500); a repeated registration answers 208 (or 200 with
  the party's own token), never 500.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.coordinator import (
    already_registered,
    bearer,
    coordinator_of,
    json_body,
    registration_view,
)
from ptx_chain_node.coordination.collaboration import (
    CollaborationRequest,
    ColumnSpec,
    InputSpec,
    ProgramRef,
    parse_model,
)
from ptx_chain_node.coordination.programs import canonical_json
from ptx_chain_node.coordination.records import CollaborationRecord, Role
from ptx_chain_node.coordination.service import Registration
from ptx_chain_node.coordination.states import CollabState
from ptx_chain_node.coordination.tokens import token_matches
from ptx_chain_node.errors import NotFoundError, Problem, PtxError


def _bad(field_name: str, problem: str, status: int = 422) -> PtxError:
    return PtxError(f"{field_name}: {problem}", status, [Problem(field_name, problem)])


def _cid(request: Request) -> str:
    cid: str = request.path_params["cid"]
    try:
        uuid.UUID(cid)
    except ValueError:
        raise NotFoundError("no such collaboration (ids are UUIDs)", "path.cid") from None
    return cid


def upstream_view(record: CollaborationRecord) -> dict[str, Any]:
    """Upstream's Collaboration: ``{id, name, mpc_program, csv_specification, ...}``."""
    d = record.definition
    ref = {"name": d.program.name, "version": d.program.version, "parameters": d.program.parameters}
    return {
        "id": d.id,
        "name": d.name,
        "mpc_program": base64.b64encode(canonical_json(ref)).decode(),
        "csv_specification": d.input_specification.csv_header(),
        "participation_number": d.number_of_parties,
        "config_id": None,
        "output_parties": None,  # endpoints are not disclosed
        "state": record.state.value,
        "program_sha256": d.program.sha256,
        "engine": d.engine,
    }


async def _text_part(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        raw = await value.read()
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise _bad(name, "not UTF-8 text") from None
    return str(value)


def _program(text: str) -> ProgramRef:
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise _bad("mpc_program", "not valid JSON") from None
        return parse_model(ProgramRef, data, prefix="mpc_program")
    name, sep, version = text.partition("@")
    if not sep or "\n" in text:
        raise _bad(
            "mpc_program",
            'program source is not accepted: give a catalogue reference, JSON {"name", '
            '"version", "parameters"} or name@version',
        )
    return parse_model(ProgramRef, {"name": name, "version": version}, prefix="mpc_program")


def _input_spec(header: str | None, spec_json: str | None) -> InputSpec:
    if spec_json is not None:
        try:
            data = json.loads(spec_json)
        except ValueError:
            raise _bad("input_specification", "not valid JSON") from None
        return parse_model(InputSpec, data, prefix="input_specification")
    if not header or not header.strip():
        raise _bad("csv_header_line", "required (e.g. 'value')")
    names = [n.strip() for n in header.strip().split(",")]
    columns = [parse_model(ColumnSpec, {"name": n}, prefix="csv_header_line") for n in names]
    return parse_model(InputSpec, {"columns": [c.model_dump() for c in columns]})


async def create(request: Request) -> Response:
    coordinator = coordinator_of(request)
    coordinator.gate.require(bearer(request))
    parts = ["name", "mpc_program", "number_of_parties", "cs_config", "engine"]
    parts += ["csv_header_line", "input_specification", "deadline"]
    try:
        async with request.form() as form:
            fields = {part: await _text_part(form, part) for part in parts}
    except PtxError:
        raise
    except Exception:  # noqa: BLE001 - any multipart parsing failure is the client's
        raise _bad("body", "expected multipart/form-data", 400) from None
    name, program = fields["name"], fields["mpc_program"]
    if not name:
        raise _bad("name", "required")
    if not program:
        raise _bad("mpc_program", "required")
    raw_parties = fields["number_of_parties"]
    if raw_parties is None or not raw_parties.strip().isdigit():
        raise _bad("number_of_parties", "required: a positive integer")
    config_text = fields["cs_config"]
    try:
        config = json.loads(config_text) if config_text and config_text.strip() else {}
    except ValueError:
        raise _bad("cs_config", "not valid JSON") from None
    if not isinstance(config, dict):
        raise _bad("cs_config", "expected a JSON object")
    engine = fields["engine"]
    if engine is None:
        engine = "carbynestack" if "carbynestack" in coordinator.engines else ""
        engine = engine or next(iter(sorted(coordinator.engines)), "")
    body: dict[str, Any] = {
        "name": name,
        "program": _program(program).model_dump(),
        "input_specification": _input_spec(
            fields["csv_header_line"], fields["input_specification"]
        ).model_dump(),
        "number_of_parties": int(raw_parties),
        "engine": engine,
        "compute_config": config,
        "approval": "on_confirm",
    }
    if (deadline := fields["deadline"]) is not None:
        body["deadline"] = deadline
    request_model = parse_model(CollaborationRequest, body)
    record, _ = await coordinator.create(request_model, bearer(request))
    return JSONResponse(upstream_view(record))


async def list_collaborations(request: Request) -> Response:
    records = await coordinator_of(request).collaborations(limit=1000)
    return JSONResponse([upstream_view(r) for r in records])


async def get_collaboration(request: Request) -> Response:
    return JSONResponse(upstream_view(await coordinator_of(request).require(_cid(request))))


async def delete_collaboration(request: Request) -> Response:
    await coordinator_of(request).delete(_cid(request), bearer(request))
    return JSONResponse({"deleted": request.path_params["cid"]})


def _registered(registration: Registration, token: str | None) -> Response:
    if registration.created or token_matches(token, registration.party.token_sha256):
        body = registration_view(registration)
        body.setdefault("secret_ids", None)
        if registration.party.role is Role.INPUT:
            body["csv_specification"] = body["csv_header"]
        return JSONResponse(body)
    return already_registered(registration.party)


async def register_input(request: Request) -> Response:
    token = bearer(request)
    registration = await coordinator_of(request).register_input(
        _cid(request), request.path_params["pid"], token
    )
    return _registered(registration, token)


async def unregister_input(request: Request) -> Response:
    await coordinator_of(request).unregister_input(
        _cid(request), request.path_params["pid"], bearer(request)
    )
    return JSONResponse({"unregistered": request.path_params["pid"]})


async def register_output(request: Request) -> Response:
    endpoint = request.query_params.get("party_client_endpoint")
    if not endpoint:
        raise _bad("party_client_endpoint", "required query parameter", 400)
    token = bearer(request)
    registration = await coordinator_of(request).register_output(
        _cid(request), request.path_params["pid"], token, endpoint=endpoint
    )
    return _registered(registration, token)


async def input_parties(request: Request) -> Response:
    coordinator = coordinator_of(request)
    cid = _cid(request)
    token = bearer(request)
    parties = await coordinator.party_list(cid, token)
    operator = coordinator.gate.is_operator(token)
    return JSONResponse(
        [
            {
                "collaboration_id": cid,
                "party_id": p.party_id,
                "secret_ids": p.secret_ids if operator else None,
                "confirmed": p.confirmed_at is not None,
            }
            for p in parties
            if p.role is Role.INPUT
        ]
    )


async def confirm_upload(request: Request) -> Response:
    cid = _cid(request)
    pid = request.path_params["pid"]
    body = await json_body(request)
    rows: int | None = None
    if isinstance(body, dict):
        rows = body.get("rows")
        body = body.get("secret_ids")
    if not isinstance(body, list) or not all(isinstance(i, str) for i in body):
        raise _bad("body", 'expected a JSON array of secret ids (or {"secret_ids", "rows"})')
    raw_rows = request.query_params.get("rows")
    if raw_rows is not None:
        if not raw_rows.isdigit():
            raise _bad("query.rows", "a non-negative integer")
        rows = int(raw_rows)
    if rows is not None and (not isinstance(rows, int) or rows < 0):
        raise _bad("rows", "a non-negative integer")
    record, _ = await coordinator_of(request).confirm_upload(
        cid,
        pid,
        bearer(request),
        secret_ids=body,
        rows=rows,
        program_sha256=request.headers.get("x-ptx-program-sha256"),
    )
    return JSONResponse(
        {"collaboration_id": cid, "party_id": pid, "secret_ids": body, "state": record.state.value}
    )


async def result_ids(request: Request) -> Response:
    record = await coordinator_of(request).results(_cid(request), bearer(request))
    if record.state is CollabState.DONE:
        return JSONResponse(record.result_ids or [])
    if record.state is CollabState.RUNNING:
        return JSONResponse({"code": 409, "message": "computation running"}, status_code=409)
    if record.state in (CollabState.FAILED, CollabState.EXPIRED):
        message = f"collaboration {record.state.value}: {record.error or 'no result'}"
        return JSONResponse({"code": 500, "message": message}, status_code=500)
    return JSONResponse({"code": 404, "message": "computation not started"}, status_code=404)


async def compute_config(request: Request) -> Response:
    return JSONResponse(
        await coordinator_of(request).compute_config(_cid(request), bearer(request))
    )


async def ping(_request: Request) -> Response:
    return PlainTextResponse("pong")


async def sys_status(request: Request) -> Response:
    coordinator = coordinator_of(request)
    ok = await coordinator.database.ping()
    counts = await coordinator.store.counts() if ok else {}
    body: dict[str, Any] = {
        "status": "ok" if ok else "degraded",
        "store": "ok" if ok else "unreachable",
        "collaborations": counts,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


C = "/collaboration/{cid}"
ROUTES: list[BaseRoute] = [
    Route("/ping", ping, methods=["GET"]),
    Route("/sys_status", sys_status, methods=["GET"]),
    Route("/collaboration", create, methods=["POST"]),
    Route("/collaboration", list_collaborations, methods=["GET"]),
    Route(C, get_collaboration, methods=["GET"]),
    Route(C, delete_collaboration, methods=["DELETE"]),
    Route(C + "/register-input-party/{pid}", register_input, methods=["POST", "PUT"]),
    Route(C + "/register-input-party/{pid}", unregister_input, methods=["DELETE"]),
    Route(C + "/register-output-party/{pid}", register_output, methods=["POST", "PUT"]),
    Route(C + "/input-parties", input_parties, methods=["GET"]),
    Route(C + "/confirm-upload/{pid}", confirm_upload, methods=["POST", "PUT"]),
    Route("/confirm-upload/{cid}/{pid}", confirm_upload, methods=["POST", "PUT"]),
    Route(C + "/result_ids", result_ids, methods=["GET"]),
    Route(C + "/compute_config", compute_config, methods=["GET"]),
    Route(C + "/compute-config", compute_config, methods=["GET"]),
]
