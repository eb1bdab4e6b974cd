"""The resource endpoint the PDC calls: authenticate, validate, store, then ACK.

Nothing is stored unless the request is valid, and the ACK is sent only after the job
is committed. The resume waits until the ACK has left (plus a delay): a background task
of the response records when it was sent.
"""

from __future__ import annotations

import secrets
import time

import structlog
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.runtime import Runtime
from gateway.settings import AuthSettings, ResourceSettings
from ptx_chain_node.chain import ChainContext, read_chain_context
from ptx_chain_node.errors import AuthError, ProtocolError, PtxError
from ptx_chain_node.job import JobState, job_id_for
from ptx_chain_node.payload import (
    Credentials,
    decode_json,
    dump_payload,
    parse_payload,
    split_credentials,
)
from ptx_chain_node.store.jobs import NewJob

log = structlog.get_logger(__name__)


def _equal(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def authenticate(auth: AuthSettings, headers: dict[str, str], creds: Credentials | None) -> None:
    """Accept the request if any configured method matches; raise :class:`AuthError`."""
    if not auth.enabled:
        return
    if auth.api_key_header and auth.api_key is not None:
        given = headers.get(auth.api_key_header.lower())
        if given is not None and _equal(given, auth.api_key.get_secret_value()):
            return
    if auth.username is not None and auth.password is not None and creds is not None:
        user_ok = _equal(creds.username, auth.username)
        password_ok = _equal(creds.password.get_secret_value(), auth.password.get_secret_value())
        if user_ok and password_ok:
            return
    raise AuthError("missing or wrong credentials")


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes with a 413."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError.single("body", f"larger than {limit} bytes", 413)
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProtocolError.single("body", "client disconnected", 400)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ProtocolError.single("body", f"larger than {limit} bytes", 413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def decode_headers(scope: Scope) -> dict[str, str]:
    """ASGI headers as a dict with lower-case names; the first occurrence wins."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def check_target(resource: ResourceSettings, context: ChainContext) -> None:
    if resource.target_ids and context.target_id not in resource.target_ids:
        raise ProtocolError.single(
            "header.x-ptx-target-id", "not an offering served by this resource", 404
        )


class ResourceEndpoint:
    """The pure-ASGI endpoint of one configured resource (the hot path: kept lean)."""

    def __init__(self, resource: ResourceSettings) -> None:
        self.resource = resource

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        resource = self.resource
        started = time.perf_counter()
        headers = decode_headers(scope)
        try:
            limit = runtime.settings.limits.max_body_bytes
            document, creds = split_credentials(
                decode_json(await read_body(receive, headers, limit))
            )
            authenticate(resource.auth, headers, creds)
            context = read_chain_context(headers)
            check_target(resource, context)
            payload = parse_payload(document, skip_body_processing=resource.skip_body_processing)
            validator = runtime.validator_for(resource.name)
            if validator is not None:
                await validator.validate(context, payload)
        except PtxError as exc:
            runtime.metrics.rejected.labels(str(exc.status)).inc()
            raise
        if runtime.shutting_down:
            raise ProtocolError.single("service", "shutting down", 503)
        job_id = job_id_for(context.chain_id, context.target_id)
        job = NewJob(
            id=job_id,
            resource=resource.name,
            mode=resource.mode,
            context=context,
            # As stored: nothing holds the parsed body (for a large one, most of the
            # request's memory) once this request is done, however long the intake keeps it.
            payload=dump_payload(payload),
            not_before=time.time() + runtime.settings.resume.delay,
        )
        # The success path logs nothing (metrics and /jobs tell); binding the chain ids into
        # the log context costs more than the rest of the parsing, so errors name them.
        await self._store_and_answer(runtime, job, started, scope, receive, send)

    async def _store_and_answer(
        self,
        runtime: Runtime,
        job: NewJob,
        started: float,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        job_id = job.id
        runtime.acks.expect(job_id)
        try:
            await runtime.intake.submit(job)
        except Exception as exc:  # noqa: BLE001 - any store failure means no ACK
            runtime.acks.sent(job_id)
            log.error(
                "job not stored",
                error=type(exc).__name__,
                job_id=job_id,
                chain_id=job.context.chain_id,
                target_id=job.context.target_id,
            )
            raise ProtocolError.single("store", "unavailable; not acknowledged", 503) from None
        runtime.metrics.deliveries.inc()
        if self.resource.mode == "sync":
            response = await _sync_answer(runtime, self.resource, job_id)
            await response(scope, receive, send)
            return
        runtime.metrics.ack_latency.observe(time.perf_counter() - started)
        try:
            await send_json(send, b'{"status":"ACK","jobId":"' + job_id.encode() + b'"}')
        finally:
            # Sent, or the connection broke: either way the PDC suspends the node now.
            runtime.acks.sent(job_id)
            runtime.worker.wake()


async def send_json(send: Send, body: bytes, status: int = 200) -> None:
    """Send a complete JSON response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _sync_answer(runtime: Runtime, resource: ResourceSettings, job_id: str) -> Response:
    runtime.acks.sent(job_id)  # a sync job is never resumed
    runtime.worker.wake()
    job = await runtime.worker.wait_settled(job_id, resource.sync_timeout)
    if job is None:
        raise ProtocolError.single("result", "not ready within the synchronous wait", 504)
    if job.state == JobState.FAILED or job.result is None:
        raise ProtocolError.single("result", job.last_error or "processing failed", 502)
    body = {"data": job.result.data, "params": job.result.params}
    return JSONResponse(body)
