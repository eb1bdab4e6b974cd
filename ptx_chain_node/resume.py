"""Resuming a service chain: ``POST {own PDC}/service-chain/resume``, exactly once.

The PDC's resume is not idempotent (every call re-runs the node), answers 200 even when
nothing matched, 500 on an exception and 413 over its body limit. So:

- the body echoes ``chainId`` and ``targetId`` byte for byte and never carries ``hostURI``;
- transient failures (connection errors, timeouts, 5xx, 408, 429) are retried with
  exponential backoff and jitter until a deadline; other 4xx (and 413) fail at once;
- the call goes only to the configured PDC base URL, never to a URL from a header.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_random_exponential,
)

from ptx_chain_node.chain import ChainContext
from ptx_chain_node.job import JobResult

RESUME_PATH = "/service-chain/resume"


class ResumePolicy(BaseModel):
    """How and when a chain is resumed."""

    delay: float = Field(3.0, ge=0, description="seconds to wait after the ACK was sent")
    timeout: float = Field(90.0, ge=60, description="per-call timeout; the PDC answers late")
    deadline: float = Field(3600.0, gt=0, description="seconds of retrying before failing")
    backoff_initial: float = Field(1.0, gt=0)
    backoff_max: float = Field(60.0, gt=0)
    max_body_bytes: int = Field(2 * 1024 * 1024, gt=0, description="PDC expressLimitSize")


Verdict = Literal["ok", "retry", "fail"]


def classify(status: int) -> Verdict:
    """What a resume answer means: done, try again, or give up."""
    if 200 <= status < 300:
        return "ok"
    if status >= 500 or status in (408, 429):
        return "retry"
    return "fail"


class ResumeBodyTooLarge(ValueError):
    """The resume body would exceed the PDC's body limit."""


def resume_body(context: ChainContext, result: JobResult, max_bytes: int) -> bytes:
    """The JSON resume body for ``context``; raises when it exceeds ``max_bytes``."""
    body: dict[str, Any] = {
        "chainId": context.chain_id,
        "targetId": context.target_id,
        "data": result.data,
    }
    if result.params is not None:
        body["params"] = result.params
    encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) > max_bytes:
        raise ResumeBodyTooLarge(
            f"result of {len(encoded)} bytes exceeds the resume limit of {max_bytes} bytes"
        )
    return encoded


class TransientResumeError(Exception):
    """A failure worth retrying."""


class ResumeFailed(Exception):
    """The resume failed for good; the message is the job's failure reason."""


class PDCClient:
    """The gateway's own PDC, reached only at its configured base URL."""

    def __init__(self, base_url: str, client: httpx.AsyncClient, *, timeout: float = 90.0):
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.timeout = timeout

    async def resume_once(self, body: bytes) -> Verdict:
        """One resume call; raises :class:`TransientResumeError` or :class:`ResumeFailed`."""
        try:
            response = await self.client.post(
                self.base_url + RESUME_PATH,
                content=body,
                headers={"content-type": "application/json"},
                timeout=self.timeout,
            )
        except httpx.TransportError as exc:
            raise TransientResumeError(f"{type(exc).__name__}: {exc}") from exc
        verdict = classify(response.status_code)
        if verdict == "retry":
            raise TransientResumeError(f"PDC answered {response.status_code}")
        if verdict == "fail":
            raise ResumeFailed(f"PDC refused the resume with {response.status_code}")
        return verdict

    async def resume(
        self,
        body: bytes,
        *,
        policy: ResumePolicy,
        remaining: float,
        on_attempt: Callable[[int], Awaitable[None]] | None = None,
        on_error: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """Resume with retries for at most ``remaining`` seconds; raise :class:`ResumeFailed`."""
        if remaining <= 0:
            raise ResumeFailed("resume deadline passed")
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientResumeError),
            wait=wait_random_exponential(multiplier=policy.backoff_initial, max=policy.backoff_max),
            stop=stop_after_delay(remaining),
            reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if on_attempt is not None:
                        await on_attempt(attempt.retry_state.attempt_number)
                    try:
                        await self.resume_once(body)
                    except TransientResumeError as exc:
                        if on_error is not None:
                            await on_error(str(exc))
                        raise
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise ResumeFailed(f"resume deadline passed; last error: {last}") from None
