"""structlog set-up: JSON lines, context bound per request and job, secrets never logged."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

#: Keys whose values never reach a log line, whatever the caller passes.
REDACTED_KEYS = frozenset(
    {
        "password",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "secret",
        "data",
        "payload",
        "body",
        "params",
        "result",
        "credentials",
        "shares",
    }
)


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Replace the values of sensitive keys (see :data:`REDACTED_KEYS`)."""
    for key in list(event):
        if key.lower() in REDACTED_KEYS:
            event[key] = "[redacted]"
    return event


def configure(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog for the process (idempotent)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # Not cached: a logger looks up sys.stdout when it is made, and tests swap it.
        cache_logger_on_first_use=False,
    )
