"""The party client service's HTTP API (``ptx-chain-node client serve``), upstream-compatible.

Routes, a thin shell over :class:`~ptx_chain_node.mpc.client_service.ClientService`:

- ``POST /secrets/{cid}/{pid}``: multipart ``data_csv`` (file or text field); validated,
  shared and uploaded on the collaboration's engine (MPyC nodes or Carbyne Stack VCPs), then
  confirmed; 200 with the secret ids (JSON list), 4xx JSON naming the row and field, 502 when
  a node or VCP fails (nothing confirmed);
- ``GET /result/{cid}/{pid}``: the result, reconstructed or read and checked here; 404/409
  while there is none;
- ``PUT /notify``, ``PUT /notify/{cid}``: the coordinator's notification (signature checked
  when a notify secret is configured); 200;
- ``GET /notices/{cid}``: the notification remembered for ``cid``; ``GET /health``.

No plaintext leaves the service; bind it to loopback or put it behind the party's own
access control (upstream's API has no authentication).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.errors import HANDLERS
from ptx_chain_node.errors import Problem, PtxError
from ptx_chain_node.mpc.client_service import MAX_CSV_BYTES, ClientService


def _service(request: Request) -> ClientService:
    service: ClientService = request.app.state.client_service
    return service


async def _data_csv(request: Request) -> str:
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise PtxError(
            "expected multipart/form-data", 415, [Problem("data_csv", "multipart field")]
        )
    async with request.form(max_files=1, max_fields=10) as form:
        part = form.get("data_csv")
        if part is None:
            raise PtxError("data_csv missing", 422, [Problem("data_csv", "required")])
        raw = await part.read() if isinstance(part, UploadFile) else part.encode()
    if len(raw) > MAX_CSV_BYTES:
        raise PtxError("data_csv too large", 413, [Problem("data_csv", "too large")])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PtxError("data_csv is not UTF-8", 422, [Problem("data_csv", "not UTF-8")]) from None


async def post_secrets(request: Request) -> Response:
    cid, pid = request.path_params["cid"], request.path_params["pid"]
    text = await _data_csv(request)
    secret_ids = await _service(request).upload(cid, pid, text)
    return JSONResponse(secret_ids)


async def get_result(request: Request) -> Response:
    cid, pid = request.path_params["cid"], request.path_params["pid"]
    return JSONResponse(await _service(request).result(cid, pid))


async def put_notify(request: Request) -> Response:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    notice = _service(request).notify(body, headers, request.path_params.get("cid"))
    return JSONResponse(notice)


async def get_notice(request: Request) -> Response:
    return JSONResponse(_service(request).notice(request.path_params["cid"]).as_dict())


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "party_id": _service(request).party_id})


def create_client_service_app(service: ClientService) -> Starlette:
    """The ASGI app of one party's client service (closes its HTTP client at shutdown)."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.http.aclose()

    app = Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/secrets/{cid}/{pid}", post_secrets, methods=["POST"]),
            Route("/result/{cid}/{pid}", get_result, methods=["GET"]),
            Route("/notify", put_notify, methods=["PUT"]),
            Route("/notify/{cid}", put_notify, methods=["PUT"]),
            Route("/notices/{cid}", get_notice, methods=["GET"]),
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.state.client_service = service
    return app
