"""Signed notifications to output parties, retried until a deadline, every attempt recorded.

The body is upstream's ``{"message", "code", "collaborationId", "secretId"}`` (plus
``secretIds``, ``state``). Each request carries::

    x-ptx-timestamp: <unix seconds>
    x-ptx-signature: sha256=<hex HMAC-SHA256 over "<timestamp>." + body, key = party secret>

A receiver recomputes the HMAC with :func:`verify_signature`, compares in constant time and
rejects stale timestamps (replays).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from functools import partial

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from ptx_chain_node.coordination.outbox import NotificationStore
from ptx_chain_node.coordination.records import Notification, NotificationState

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-ptx-signature"
TIMESTAMP_HEADER = "x-ptx-timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=<hex>`` over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """True when ``signature`` is valid for ``body`` and ``timestamp`` is recent enough."""
    try:
        age = abs((now if now is not None else time.time()) - float(timestamp))
    except ValueError:
        return False
    if age > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class TransientNotifyError(Exception):
    """A failed attempt worth retrying (network error, 408, 429, 5xx)."""


class PermanentNotifyError(Exception):
    """A failed attempt not worth retrying (another 4xx)."""


@dataclass(frozen=True)
class NotifyPolicy:
    """How hard to try: per-attempt timeout, backoff, and how long in total."""

    timeout: float = 10.0
    initial_backoff: float = 0.5
    max_backoff: float = 60.0
    deadline: float = 3600.0  # seconds after the notification was queued
    lease_seconds: float = 60.0


class NotifyClient:
    """Sends one signed ``PUT {endpoint}/notify`` on an injected client."""

    def __init__(self, http: httpx.AsyncClient, timeout: float = 10.0) -> None:
        self.http = http
        self.timeout = timeout

    async def send(self, endpoint: str, body: bytes, secret: str) -> int:
        """Deliver once; the status code on success, else a Transient/Permanent error."""
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            response = await self.http.put(
                endpoint + "/notify", content=body, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise TransientNotifyError(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status < 300:
            return status
        error = f"HTTP {status}"
        if status in (408, 425, 429) or status >= 500:
            raise TransientNotifyError(error)
        raise PermanentNotifyError(error)


class Notifier:
    """Delivers queued notifications (leased from the outbox) in background tasks."""

    def __init__(
        self, store: NotificationStore, client: NotifyClient, policy: NotifyPolicy
    ) -> None:
        self.store = store
        self.client = client
        self.policy = policy
        self.owner = f"notify-{uuid.uuid4().hex[:12]}"
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def pump(self) -> int:
        """Lease every due notification and start delivering it; returns how many."""
        claimed = await self.store.claim_due(self.owner, self.policy.lease_seconds)
        for notification in claimed:
            if notification.id not in self._tasks:
                task = asyncio.create_task(self._deliver(notification))
                self._tasks[notification.id] = task
                task.add_done_callback(partial(self._forget, notification.id))
        return len(claimed)

    def _forget(self, notification_id: str, _task: object) -> None:
        self._tasks.pop(notification_id, None)

    async def idle(self) -> None:
        """Wait until the deliveries started so far have ended (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        """Cancel deliveries in progress and release them for the next start."""
        tasks = dict(self._tasks)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for notification_id in tasks:
            await self.store.release(notification_id, self.owner)

    async def _attempt(self, notification: Notification, secret: str) -> None:
        started = time.time()
        status: int | None = None
        error: str | None = None
        try:
            status = await self.client.send(
                notification.endpoint, notification.body.encode(), secret
            )
        except (TransientNotifyError, PermanentNotifyError) as exc:
            error = str(exc)
            raise
        finally:
            await self.store.record_attempt(
                notification.id,
                at=started,
                duration=time.time() - started,
                status_code=status,
                error=error,
                lease_seconds=self.policy.lease_seconds,
            )

    async def _deliver(self, notification: Notification) -> None:
        try:
            await self._deliver_once(notification)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a store hiccup: the sweep retries it later
            log.warning("notification delivery interrupted", error=type(exc).__name__)
            await asyncio.shield(self.store.release(notification.id, self.owner))

    async def _deliver_once(self, notification: Notification) -> None:
        bound = log.bind(
            collaboration_id=notification.collaboration_id, party=notification.party_id
        )
        secret = await self.store.secret_for(notification)
        if secret is None:
            await self.store.complete(notification.id, self.owner, NotificationState.FAILED)
            bound.warning("notification dropped: output party gone")
            return
        remaining = max(0.0, notification.deadline - time.time())
        retrying = AsyncRetrying(
            stop=stop_after_delay(remaining),
            wait=wait_exponential_jitter(
                multiplier=self.policy.initial_backoff, max=self.policy.max_backoff
            ),
            retry=retry_if_exception_type(TransientNotifyError),
            reraise=False,
        )
        state = NotificationState.DELIVERED
        try:
            async for attempt in retrying:
                with attempt:
                    await self._attempt(notification, secret)
        except (RetryError, PermanentNotifyError) as exc:
            state = NotificationState.FAILED
            bound.warning("notification failed", error=str(exc))
        await self.store.complete(notification.id, self.owner, state)
        if state is NotificationState.DELIVERED:
            bound.info("notification delivered")
