"""Structured JSON logs that Cloud Logging parses (one object per line on stdout).

Every line carries ``severity`` and whatever context is bound for the current
invocation: domain, function, correlation id, event id, uid, and while a span runs
the trace fields Cloud Logging joins on (``flowsuite.core.tracing``). Context lives
in a ContextVar, so concurrent requests in one instance never mix their fields.

``report`` writes an unexpected exception as an Error Reporting event
(``@type`` ReportedErrorEvent, ``stack_trace``, ``serviceContext``): Error Reporting
picks such a line up from the logs with no client library and no API call.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

_EMPTY: dict[str, Any] = {}
# The default is never mutated: bind() always sets a new dict.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("flowsuite_log_context", default=_EMPTY)


# Functions that add fields to every line (the trace fields of the running span).
_providers: list[Callable[[], dict[str, Any]]] = []


def add_fields_provider(provider: Callable[[], dict[str, Any]]) -> None:
    if provider not in _providers:
        _providers.append(provider)


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
    for provider in _providers:
        entry.update(provider())
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


REPORTED_ERROR_EVENT = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"


def deploy_version() -> str:
    """The deployed version Error Reporting groups by: ``FLOWSUITE_VERSION`` if set (a
    release tag), else Cloud Run's revision (``K_REVISION``, set for 2nd gen functions)."""
    return os.environ.get("FLOWSUITE_VERSION") or os.environ.get("K_REVISION") or "local"


def error_event(exc: BaseException, *, service: str, version: str, limit: int = 30) -> dict[str, Any]:
    """The fields that make a log line an Error Reporting event. Pure.

    Google's format: ``@type`` set to ReportedErrorEvent makes Error Reporting read the
    entry; the stack trace is ``traceback.format_exception`` text in ``stack_trace``
    (read before ``message``, which stays the line's own short message);
    ``serviceContext`` names the function and the deployed version."""
    return {
        "@type": REPORTED_ERROR_EVENT,
        "stack_trace": "".join(traceback.format_exception(exc, limit=limit)),
        "serviceContext": {"service": service, "version": version},
        "error": f"{type(exc).__name__}: {exc}"[:1000],
    }


def report(message: str, exc: BaseException, **fields: Any) -> None:
    """Logs ``exc`` at ERROR as an Error Reporting event, with the bound context (the
    correlation id and the trace fields) beside it."""
    service = fields.pop("service", None) or _context.get().get("function") or os.environ.get("K_SERVICE") or "flowsuite"
    emit("ERROR", message, **fields, **error_event(exc, service=service, version=deploy_version()))


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def ms(self) -> float:
        return round((time.perf_counter() - self.start) * 1000, 2)
