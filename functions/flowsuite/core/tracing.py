"""Trace context in, through and out; spans per hop; Cloud Trace when enabled.

In: a callable or the Stripe webhook reads the caller's W3C ``traceparent`` or
Google's ``X-Cloud-Trace-Context`` (``from_headers``), or starts a trace.
Through: an event's envelope carries the publisher's trace id, span id and sampled
flag (``Envelope.trace``), so a delivery (trigger, Cloud Tasks retry, sweep, replay)
is a span whose parent is the hop that published its event.
Out: while a span runs, every log line carries ``logging.googleapis.com/trace``
(``projects/<project>/traces/<id>``), ``logging.googleapis.com/spanId`` and
``logging.googleapis.com/trace_sampled``, which Logs Explorer and Cloud Trace join on.

Spans (callable, transaction, Stripe call, delivery, webhook) are written as JSON
lines (``message: "span"``) under the emulators or with ``TRACE_LOG_SPANS=true``, and
exported to Cloud Trace through OpenTelemetry's Cloud Trace exporter when the
``TRACE_EXPORT`` param is true. Off, nothing of OpenTelemetry is imported.

Parsing and formatting are pure, for unit tests.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import functools
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from flowsuite.core import log, settings

TRACEPARENT = "traceparent"
CLOUD_TRACE_CONTEXT = "X-Cloud-Trace-Context"

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16

# Plain classes and regexes compiled on first use, not dataclasses: this module is imported
# by every instance, and a dataclass costs about 2 ms of cold start to build.


@functools.cache
def _pattern(which: str) -> re.Pattern[str]:
    if which == "traceparent":
        return re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
    if which == "cloud":
        return re.compile(r"^([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([0-9]+))?$")
    return re.compile(r"^[0-9a-f]{%s}$" % which)  # noqa: UP031 - "32" or "16" hex digits


class TraceContext:
    """Where a hop sits in a trace: the trace, the span that is its parent (None: a
    caller that named the trace only) and whether the caller sampled it. Immutable."""

    __slots__ = ("trace_id", "span_id", "sampled")

    def __init__(self, trace_id: str, span_id: str | None = None, sampled: bool = False) -> None:
        object.__setattr__(self, "trace_id", trace_id)
        object.__setattr__(self, "span_id", span_id)
        object.__setattr__(self, "sampled", bool(sampled))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TraceContext is immutable")

    def _key(self) -> tuple[str, str | None, bool]:
        return (self.trace_id, self.span_id, self.sampled)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TraceContext) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"TraceContext(trace_id={self.trace_id!r}, span_id={self.span_id!r}, sampled={self.sampled!r})"

    def stored(self) -> dict[str, Any]:
        """As an envelope or a document keeps it."""
        return {"trace_id": self.trace_id, "span_id": self.span_id, "sampled": self.sampled}


def parse_traceparent(value: str | None) -> TraceContext | None:
    """A W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex flags>``), or None when invalid. Pure.

    Version ``ff`` and all-zero ids are invalid; version 00 has exactly four parts; a
    later version may carry more, which are ignored (the spec's forward compatibility)."""
    match = _pattern("traceparent").match((value or "").strip())
    if not match:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def parse_cloud_trace_context(value: str | None) -> TraceContext | None:
    """Google's ``X-Cloud-Trace-Context`` (``TRACE_ID/SPAN_ID;o=OPTIONS``; the span id a
    decimal uint64, both optional), or None when invalid. Pure."""
    match = _pattern("cloud").match((value or "").strip())
    if not match:
        return None
    trace_id, span, options = match.groups()
    trace_id = trace_id.lower()
    if trace_id == _ZERO_TRACE:
        return None
    span_id = None
    if span is not None and 0 < int(span) < 2**64:
        span_id = f"{int(span):016x}"
    return TraceContext(trace_id, span_id, bool(options and int(options) & 1))


def from_headers(headers: Mapping[str, str] | Any) -> TraceContext | None:
    """The caller's trace: ``traceparent`` first (W3C), then ``X-Cloud-Trace-Context``. Pure."""
    if headers is None:
        return None
    return parse_traceparent(headers.get(TRACEPARENT)) or parse_cloud_trace_context(headers.get(CLOUD_TRACE_CONTEXT))


def format_traceparent(ctx: TraceContext) -> str:
    """``ctx`` as a W3C ``traceparent`` (a new span id where it names none). Pure but for that id."""
    return f"00-{ctx.trace_id}-{ctx.span_id or new_span_id()}-{'01' if ctx.sampled else '00'}"


def format_cloud_trace_context(ctx: TraceContext) -> str:
    span = int(ctx.span_id, 16) if ctx.span_id else 0
    return f"{ctx.trace_id}/{span};o={1 if ctx.sampled else 0}"


def from_stored(value: Any) -> TraceContext | None:
    """A trace kept in an envelope or a document (``TraceContext.stored``), or None. Pure."""
    if not isinstance(value, Mapping):
        return None
    trace_id, span_id = value.get("trace_id"), value.get("span_id")
    if not isinstance(trace_id, str) or not _pattern("32").match(trace_id) or trace_id == _ZERO_TRACE:
        return None
    if not (isinstance(span_id, str) and _pattern("16").match(span_id)):
        span_id = None
    return TraceContext(trace_id, span_id, bool(value.get("sampled")))


def log_fields(trace_id: str, span_id: str | None, sampled: bool, project: str) -> dict[str, Any]:
    """The fields Cloud Logging reads to join a line to its trace and span. Pure."""
    fields: dict[str, Any] = {TRACE_FIELD: f"projects/{project}/traces/{trace_id}", SAMPLED_FIELD: sampled}
    if span_id:
        fields[SPAN_FIELD] = span_id
    return fields


def new_trace_id() -> str:
    return secrets.token_hex(16)


def new_span_id() -> str:
    return secrets.token_hex(8)


# ---------------------------------------------------------------- spans


class Span:
    """One hop: its name, ids, start, duration, status and attributes."""

    __slots__ = ("name", "trace_id", "span_id", "parent_id", "sampled", "start", "attributes", "status",
                 "duration_ms", "outer", "joins_documents", "_t0")

    def __init__(self, name: str, trace_id: str, span_id: str, parent_id: str | None, sampled: bool,
                 start: dt.datetime, attributes: dict[str, Any] | None = None, *, outer: Span | None = None,
                 joins_documents: bool = False) -> None:
        self.name, self.trace_id, self.span_id, self.parent_id = name, trace_id, span_id, parent_id
        self.sampled, self.start, self.attributes = sampled, start, dict(attributes or {})
        self.status: str = "ok"
        self.duration_ms: float | None = None
        self.outer = outer  # the running span it began under
        self.joins_documents = joins_documents  # an entry that joins the trace its documents keep (the webhook)
        self._t0 = time.perf_counter()

    def __repr__(self) -> str:
        return f"Span({self.name!r}, trace_id={self.trace_id!r}, span_id={self.span_id!r}, parent_id={self.parent_id!r})"

    @property
    def context(self) -> TraceContext:
        return TraceContext(self.trace_id, self.span_id, self.sampled)

    def line(self) -> dict[str, Any]:
        """The span as its log line reports it. Pure."""
        return {"name": self.name, "trace_id": self.trace_id, "span_id": self.span_id,
                "parent_id": self.parent_id, "start": self.start.isoformat(), "duration_ms": self.duration_ms,
                "status": self.status, **({"attributes": self.attributes} if self.attributes else {})}


_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("flowsuite_span", default=None)


def current() -> TraceContext | None:
    """The running span's context (trace, span, sampled), or None outside any span."""
    running_span = _current.get()
    return running_span.context if running_span else None


def current_name() -> str | None:
    """The running span's name (a callable, a subscriber, ``payments.apply_stripe_event``), or None."""
    running_span = _current.get()
    return running_span.name if running_span else None


def stored() -> dict[str, Any] | None:
    """The running span's context as a document keeps it, or None."""
    ctx = current()
    return ctx.stored() if ctx else None


def _log_fields() -> dict[str, Any]:
    running_span = _current.get()
    if running_span is None:
        return {}
    return log_fields(running_span.trace_id, running_span.span_id, running_span.sampled, settings.project_id())


log.add_fields_provider(_log_fields)  # every line of a running span carries its trace fields


def begin(name: str, *, parent: TraceContext | None = None, joins_documents: bool = False, **attributes: Any) -> Span:
    """A span that starts now under ``parent`` (default: the running span; none: a new trace).
    It does not become the running span: for leaf spans (a transaction, a Stripe call)."""
    outer = _current.get()
    if parent is None:
        parent = outer.context if outer else TraceContext(new_trace_id(), None, export_enabled())
    return Span(name, parent.trace_id, new_span_id(), parent.span_id, parent.sampled, _utcnow(),
                {k: v for k, v in attributes.items() if v is not None}, outer=outer, joins_documents=joins_documents)


def end(span: Span, *, error: BaseException | str | None = None) -> None:
    span.duration_ms = round((time.perf_counter() - span._t0) * 1000, 2)  # noqa: SLF001
    if span.outer is not None and span.parent_id == span.outer.span_id:
        span.trace_id, span.sampled = span.outer.trace_id, span.outer.sampled  # its parent joined another trace
    if error is not None:
        span.status = "error"
        span.attributes["error"] = (f"{type(error).__name__}: {error}" if isinstance(error, BaseException)
                                    else str(error))[:300]
    if lines_enabled():
        log.debug("span", span=span.line())
    if export_enabled():
        with _lock:
            _pending.append(span)


@contextlib.contextmanager
def span(name: str, *, parent: TraceContext | None = None, entry: bool = False, joins_documents: bool = False,
         **attributes: Any) -> Iterator[Span]:
    """Runs the block as a span, the running span inside it: its log lines carry its ids.
    ``entry`` marks an invocation's outermost span: spans kept for Cloud Trace are sent
    when it ends (one export per invocation, before the instance may be throttled)."""
    s = begin(name, parent=parent, joins_documents=joins_documents, **attributes)
    token = _current.set(s)
    try:
        yield s
    except BaseException as exc:
        _current.reset(token)
        end(s, error=exc)
        raise
    else:
        _current.reset(token)
        end(s)
    finally:
        if entry:
            flush()


def join(trace: TraceContext | None) -> bool:
    """Moves the running span into ``trace`` (a trace a document keeps), as its child.

    A Stripe event reaches us in the trace of Stripe's request; once its payment is
    known, its span joins the checkout's trace, which the payment keeps, and so does
    every event it publishes. An entry span declared ``joins_documents`` (the webhook)
    joins with it, and the running span stays its child; the request's own trace is
    kept as the ``request_trace`` attribute. Returns whether a span moved."""
    s = _current.get()
    if s is None or trace is None or trace.trace_id == s.trace_id:
        return False
    outer = s.outer
    if outer is not None and outer.joins_documents and s.parent_id == outer.span_id:
        _move(outer, trace.trace_id, trace.span_id, trace.sampled)
        _move(s, trace.trace_id, outer.span_id, trace.sampled)
    else:
        _move(s, trace.trace_id, trace.span_id, trace.sampled)
    return True


def _move(s: Span, trace_id: str, parent_id: str | None, sampled: bool) -> None:
    if s.trace_id != trace_id:
        s.attributes.setdefault("request_trace", s.trace_id)
        s.trace_id, s.parent_id, s.sampled = trace_id, parent_id, sampled


def lines_enabled() -> bool:
    """Span lines in the logs: under the emulators (tests read the tree), or when asked."""
    return settings.is_emulator() or os.environ.get("TRACE_LOG_SPANS", "").lower() == "true"


def export_enabled() -> bool:
    """The ``TRACE_EXPORT`` param: spans sent to Cloud Trace (default off)."""
    return os.environ.get(settings.TRACE_EXPORT.name, "").lower() == "true"


# ---------------------------------------------------------------- export (only when enabled)

_lock = threading.Lock()
_pending: list[Span] = []
_exporter: Any = None
_export_broken = False

EXPORTER_PACKAGE = "opentelemetry-exporter-gcp-trace"


def flush() -> None:
    """Sends the spans kept for Cloud Trace. A failure is one log line, never the invocation's."""
    global _export_broken  # noqa: PLW0603
    with _lock:
        batch, _pending[:] = list(_pending), []
    if not batch or _export_broken:
        return
    try:
        exporter, to_otel = _load_exporter()
        exporter.export([to_otel(s) for s in batch])
    except ImportError as exc:
        _export_broken = True
        log.error(f"TRACE_EXPORT is true but {EXPORTER_PACKAGE} is not installed: add it to "
                  "functions/requirements.txt (see docs/production.md) or set TRACE_EXPORT=false",
                  error=str(exc))
    except Exception as exc:  # noqa: BLE001 - tracing never fails a request
        log.warning("spans not exported to Cloud Trace", error=f"{type(exc).__name__}: {exc}", spans=len(batch))


def _load_exporter():
    """OpenTelemetry's Cloud Trace exporter, imported on first export only."""
    global _exporter  # noqa: PLW0603
    from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter  # noqa: PLC0415
    from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import ReadableSpan  # noqa: PLC0415
    from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags  # noqa: PLC0415

    if _exporter is None:
        _exporter = CloudTraceSpanExporter(project_id=settings.project_id())
    resource = Resource.create({"service.name": os.environ.get("K_SERVICE") or "flowsuite",
                                "service.version": log.deploy_version()})

    def to_otel(s: Span) -> Any:
        flags = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(int(s.trace_id, 16), int(s.span_id, 16), is_remote=False, trace_flags=flags)
        parent = (SpanContext(int(s.trace_id, 16), int(s.parent_id, 16), is_remote=True, trace_flags=flags)
                  if s.parent_id else None)
        start_ns = int(s.start.timestamp() * 1e9)
        return ReadableSpan(
            name=s.name, context=context, parent=parent, resource=resource,
            attributes={k: v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in s.attributes.items()},
            status=Status(StatusCode.ERROR if s.status == "error" else StatusCode.OK),
            start_time=start_ns, end_time=start_ns + int((s.duration_ms or 0) * 1e6),
        )

    return _exporter, to_otel


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- instrumentation


def instrument_firestore(client: Any) -> Any:
    """A span per Firestore transaction (begin to commit or rollback, one per try). Idempotent."""
    api = client._firestore_api  # noqa: SLF001 - the SDK's one RPC stub
    if getattr(api, "_flowsuite_traced", False):
        return client
    begin_rpc, commit_rpc, rollback_rpc = api.begin_transaction, api.commit, api.rollback
    open_spans: dict[bytes, Span] = {}

    def _txn(request: Any) -> bytes | None:
        value = request.get("transaction") if isinstance(request, dict) else getattr(request, "transaction", None)
        return value or None

    def traced_begin(request=None, **kwargs):
        response = begin_rpc(request=request, **kwargs)
        txn = getattr(response, "transaction", None)
        if txn and _current.get() is not None:
            open_spans[txn] = begin("firestore.transaction")
        return response

    def traced_commit(request=None, **kwargs):
        s = open_spans.pop(_txn(request), None) if _txn(request) else None
        try:
            response = commit_rpc(request=request, **kwargs)
        except Exception as exc:
            if s is not None:
                end(s, error=exc)
            raise
        if s is not None:
            s.attributes["writes"] = len(request.get("writes") or []) if isinstance(request, dict) else None
            end(s)
        return response

    def traced_rollback(request=None, **kwargs):
        s = open_spans.pop(_txn(request), None) if _txn(request) else None
        try:
            return rollback_rpc(request=request, **kwargs)
        finally:
            if s is not None:
                end(s, error="rolled back")

    api.begin_transaction, api.commit, api.rollback = traced_begin, traced_commit, traced_rollback
    api._flowsuite_traced = True  # noqa: SLF001
    return client


def instrument_http_client(http_client: Any, service: str) -> Any:
    """A span per request an SDK's HTTP client makes (Stripe's ``request_with_retries``)."""
    send = http_client.request_with_retries

    def traced(method, url, *args, **kwargs):
        s = begin(f"{service} {str(method).upper()} {_path(url)}")
        try:
            response = send(method, url, *args, **kwargs)
        except Exception as exc:
            end(s, error=exc)
            raise
        status = response[1] if isinstance(response, tuple) and len(response) > 1 else None
        s.attributes["http_status"] = status
        end(s, error=f"HTTP {status}" if isinstance(status, int) and status >= 400 else None)
        return response

    http_client.request_with_retries = traced
    return http_client


def _path(url: str) -> str:
    path = re.sub(r"^[a-z]+://[^/]+", "", str(url)).split("?", 1)[0]
    # ids out of the name, so spans of one call group together: /v1/payment_intents/pi_123/cancel
    return re.sub(r"/(?=[a-z]{2,7}_[A-Za-z0-9]*[A-Z0-9])[a-z]{2,7}_[A-Za-z0-9]{8,}(?=/|$)", "/{id}", path)
