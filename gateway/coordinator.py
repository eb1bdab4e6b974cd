"""Native coordinator routes (``/v1/collaborations``): a thin shell over the Coordinator.

Authentication is a bearer token: the operator's (create, delete, output parties, deliveries)
or the party token issued at registration (that party's approval and uploads; results for
output parties). Collaboration definitions and status are public; no route ever returns a
secret value, only secret ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ptx_chain_node.coordination import Coordinator
from ptx_chain_node.coordination.collaboration import CollaborationRequest, parse_model
from ptx_chain_node.coordination.records import CollaborationRecord, PartyRecord
from ptx_chain_node.coordination.service import Registration
from ptx_chain_node.coordination.states import CollabState
from ptx_chain_node.coordination.tokens import token_matches
from ptx_chain_node.errors import Problem, PtxError

PREFIX = "/v1/collaborations"


def coordinator_of(request: Request) -> Coordinator:
    """The app's coordinator."""
    coordinator: Coordinator = request.app.state.runtime.coordination.coordinator
    return coordinator


def bearer(request: Request) -> str | None:
    """The bearer token of the request, if any."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


async def json_body(request: Request) -> Any:
    """The decoded JSON body; 400 naming ``body`` when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise PtxError("body is not JSON", 400, [Problem("body", "not valid JSON")]) from None


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None


def collaboration_view(record: CollaborationRecord) -> dict[str, Any]:
    """A collaboration as the native API shows it (no party tokens, secrets or endpoints)."""
    d = record.definition
    return {
        "id": d.id,
        "name": d.name,
        "state": record.state.value,
        "program": d.program.model_dump(),
        "input_specification": d.input_specification.model_dump(exclude_none=True),
        "csv_header": d.input_specification.csv_header(),
        "input_parties": [p.model_dump() for p in d.input_parties],
        "number_of_parties": d.number_of_parties,
        "min_parties": d.min_parties,
        "allow_partial_run": d.allow_partial_run,
        "deadline": _iso(d.deadline),
        "engine": d.engine,
        "compute_config": d.compute_config,
        "registration": d.registration,
        "approval": d.approval,
        "created_at": _iso(d.created_at),
        "updated_at": _iso(record.updated_at),
        "finished_at": _iso(record.finished_at),
        "error": record.error,
    }


def registration_view(registration: Registration) -> dict[str, Any]:
    """What a party learns at registration (its token only the first time)."""
    record, party = registration.record, registration.party
    body: dict[str, Any] = {"collaboration_id": record.id, "party_id": party.party_id}
    if registration.token is not None:
        body["token"] = registration.token
    if registration.notify_secret is not None:
        body["notify_secret"] = registration.notify_secret
    if party.role.value == "input":
        d = record.definition
        body.update(
            identity=party.identity,
            input_specification=d.input_specification.model_dump(exclude_none=True),
            csv_header=d.input_specification.csv_header(),
            program=d.program.model_dump(),
            program_sha256=d.program.sha256,
            approval=d.approval,
            compute_config=registration.plan,
        )
    else:
        body["endpoint"] = party.endpoint
    return body


def already_registered(party: PartyRecord) -> JSONResponse:
    """208 for a repeated registration by someone without the party's token."""
    message = f"{party.role.value} party '{party.party_id}' is already registered"
    return JSONResponse({"code": 208, "message": message}, status_code=208)


def _answer(registration: Registration, token: str | None) -> Response:
    if registration.created:
        return JSONResponse(registration_view(registration), status_code=201)
    if token_matches(token, registration.party.token_sha256):
        return JSONResponse(registration_view(registration))
    return already_registered(registration.party)


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    program_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret_ids: list[str] = Field(min_length=1)
    rows: int = Field(ge=0)
    program_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


class OutputPartyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field(max_length=2000)
    notify_secret: str | None = Field(None, min_length=16, max_length=200)


def _ids(request: Request) -> tuple[str, str]:
    return request.path_params["cid"], request.path_params.get("pid", "")


async def create(request: Request) -> Response:
    body = parse_model(CollaborationRequest, await json_body(request))
    record, outputs = await coordinator_of(request).create(body, bearer(request))
    view = collaboration_view(record)
    view["output_parties"] = [registration_view(r) for r in outputs]
    return JSONResponse(view, status_code=201, headers={"location": f"{PREFIX}/{record.id}"})


def _int_query(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > high:
        raise PtxError(f"{name}: bad value", 422, [Problem(f"query.{name}", f"0 to {high}")])
    return int(raw)


async def list_collaborations(request: Request) -> Response:
    state = None
    if (name := request.query_params.get("state")) is not None:
        try:
            state = CollabState(name)
        except ValueError:
            allowed = ", ".join(s.value for s in CollabState)
            raise PtxError(
                "bad state", 422, [Problem("query.state", f"one of {allowed}")]
            ) from None
    records = await coordinator_of(request).collaborations(
        state=state,
        limit=max(1, _int_query(request, "limit", 100, 1000)),
        offset=_int_query(request, "offset", 0, 10**9),
    )
    return JSONResponse({"collaborations": [collaboration_view(r) for r in records]})


async def get_collaboration(request: Request) -> Response:
    cid, _ = _ids(request)
    return JSONResponse(collaboration_view(await coordinator_of(request).require(cid)))


async def delete_collaboration(request: Request) -> Response:
    cid, _ = _ids(request)
    await coordinator_of(request).delete(cid, bearer(request))
    return Response(status_code=204)


async def status(request: Request) -> Response:
    cid, _ = _ids(request)
    coordinator = coordinator_of(request)
    found = await coordinator.store.facts(cid)
    if found is None:
        await coordinator.require(cid)
        raise AssertionError("unreachable")
    record, facts = found
    return JSONResponse(
        {
            "id": cid,
            "state": record.state.value,
            "expected_parties": facts.expected,
            "min_parties": facts.min_parties,
            "confirmed_uploads": facts.confirmed,
            "approved_uploads": facts.approved,
            "output_parties": facts.outputs,
            "deadline": _iso(facts.deadline),
            "run_attempts": record.run_attempts,
            "error": record.error,
            "updated_at": _iso(record.updated_at),
        }
    )


async def compute_config(request: Request) -> Response:
    cid, _ = _ids(request)
    return JSONResponse(await coordinator_of(request).compute_config(cid, bearer(request)))


async def list_parties(request: Request) -> Response:
    cid, _ = _ids(request)
    parties = await coordinator_of(request).party_list(cid, bearer(request))
    return JSONResponse({"parties": [p.public() for p in parties]})


async def register_input(request: Request) -> Response:
    cid, pid = _ids(request)
    token = bearer(request)
    return _answer(await coordinator_of(request).register_input(cid, pid, token), token)


async def unregister_input(request: Request) -> Response:
    cid, pid = _ids(request)
    await coordinator_of(request).unregister_input(cid, pid, bearer(request))
    return Response(status_code=204)


async def approve(request: Request) -> Response:
    cid, pid = _ids(request)
    body = parse_model(ApprovalBody, await json_body(request))
    record = await coordinator_of(request).approve(cid, pid, body.program_sha256, bearer(request))
    return JSONResponse({"approved": body.program_sha256, "state": record.state.value})


async def confirm_upload(request: Request) -> Response:
    cid, pid = _ids(request)
    body = parse_model(UploadBody, await json_body(request))
    record, new = await coordinator_of(request).confirm_upload(
        cid,
        pid,
        bearer(request),
        secret_ids=body.secret_ids,
        rows=body.rows,
        program_sha256=body.program_sha256,
    )
    return JSONResponse({"confirmed": True, "new": new, "state": record.state.value})


async def register_output(request: Request) -> Response:
    cid, pid = _ids(request)
    body = parse_model(OutputPartyBody, await json_body(request))
    token = bearer(request)
    registration = await coordinator_of(request).register_output(
        cid, pid, token, endpoint=body.endpoint, notify_secret=body.notify_secret
    )
    if registration.created:
        return JSONResponse(registration_view(registration), status_code=201)
    return already_registered(registration.party)


async def results(request: Request) -> Response:
    cid, _ = _ids(request)
    record = await coordinator_of(request).results(cid, bearer(request))
    if record.state is not CollabState.DONE:
        message = f"no results: collaboration is {record.state.value}"
        problem = record.error or message
        raise PtxError(message, 409, [Problem("state", problem)])
    return JSONResponse({"id": cid, "state": record.state.value, "result_ids": record.result_ids})


async def notifications(request: Request) -> Response:
    cid, _ = _ids(request)
    coordinator = coordinator_of(request)
    coordinator.gate.require(bearer(request))
    await coordinator.require(cid)
    items = []
    for n in await coordinator.outbox.for_collaboration(cid):
        attempts = await coordinator.outbox.attempts(n.id)
        items.append(
            {
                "party_id": n.party_id,
                "state": n.state.value,
                "attempts": [
                    {"at": _iso(a.at), "status_code": a.status_code, "error": a.error}
                    for a in attempts
                ],
                "delivered_at": _iso(n.delivered_at),
            }
        )
    return JSONResponse({"notifications": items})


ROUTES: list[BaseRoute] = [
    Route(PREFIX, create, methods=["POST"]),
    Route(PREFIX, list_collaborations, methods=["GET"]),
    Route(PREFIX + "/{cid}", get_collaboration, methods=["GET"]),
    Route(PREFIX + "/{cid}", delete_collaboration, methods=["DELETE"]),
    Route(PREFIX + "/{cid}/status", status, methods=["GET"]),
    Route(PREFIX + "/{cid}/compute-config", compute_config, methods=["GET"]),
    Route(PREFIX + "/{cid}/parties", list_parties, methods=["GET"]),
    Route(PREFIX + "/{cid}/input-parties/{pid}", register_input, methods=["POST", "PUT"]),
    Route(PREFIX + "/{cid}/input-parties/{pid}", unregister_input, methods=["DELETE"]),
    Route(PREFIX + "/{cid}/input-parties/{pid}/approval", approve, methods=["POST", "PUT"]),
    Route(PREFIX + "/{cid}/input-parties/{pid}/upload", confirm_upload, methods=["POST", "PUT"]),
    Route(PREFIX + "/{cid}/output-parties/{pid}", register_output, methods=["POST", "PUT"]),
    Route(PREFIX + "/{cid}/results", results, methods=["GET"]),
    Route(PREFIX + "/{cid}/notifications", notifications, methods=["GET"]),
]
