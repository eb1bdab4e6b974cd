"""Every error answer is JSON: ``{"code", "message", "errors"?}``."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ptx_chain_node.errors import PtxError


def error_response(
    status: int, message: str, errors: list[dict[str, str]] | None = None
) -> JSONResponse:
    body: dict[str, object] = {"code": status, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


async def ptx_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PtxError)
    headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.as_body(), status_code=exc.status, headers=headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail or "error")


async def server_error(_request: Request, _exc: Exception) -> Response:
    return error_response(500, "internal error")


HANDLERS = {PtxError: ptx_error, HTTPException: http_error, Exception: server_error}
