"""Structured JSON logs that Cloud Logging parses (one object per line on stdout).

Every line carries ``severity`` and whatever context is bound for the current
invocation: domain, function, correlation id, event id, uid. Context lives in a
ContextVar, so concurrent requests in one instance never mix their fields.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

_EMPTY: dict[str, Any] = {}
# The default is never mutated: bind() always sets a new dict.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("flowsuite_log_context", default=_EMPTY)


def current() -> dict[str, Any]:
    return dict(_context.get())


def correlation_id() -> str | None:
    return _context.get().get("correlation_id")


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def emit(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, **_context.get(), **fields}
    if entry.get("correlation_id"):
        # Lets Cloud Logging group lines by correlation id ("Show entries for this trace").
        entry["logging.googleapis.com/labels"] = {"correlation_id": entry["correlation_id"]}
    sys.stdout.write(json.dumps(entry, default=str) + "\n")
    sys.stdout.flush()


def debug(message: str, **fields: Any) -> None:
    emit("DEBUG", message, **fields)


def info(message: str, **fields: Any) -> None:
    emit("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    emit("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    emit("ERROR", message, **fields)


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 2)
