"""Trace context (W3C traceparent, X-Cloud-Trace-Context), log fields, spans and Error Reporting events."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flowsuite.core import events, log, tracing
from flowsuite.core.tracing import TraceContext
from flowsuite.ops.events import ProbeSent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


# ---------------------------------------------------------------- parsing and formatting


def test_traceparent_is_parsed_with_its_sampled_flag():
    assert tracing.parse_traceparent(f"00-{TRACE}-{SPAN}-01") == TraceContext(TRACE, SPAN, True)
    assert tracing.parse_traceparent(f"00-{TRACE}-{SPAN}-00") == TraceContext(TRACE, SPAN, False)
    assert tracing.parse_traceparent(f" 00-{TRACE}-{SPAN}-03 ").sampled  # other flag bits ignored


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"00-{TRACE}-{SPAN}", f"00-{TRACE.upper()}-{SPAN}-01", f"ff-{TRACE}-{SPAN}-01",
    f"00-{'0' * 32}-{SPAN}-01", f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE}-{SPAN}-01-extra", f"00-{TRACE[:-1]}-{SPAN}-01",
    f"0-{TRACE}-{SPAN}-01",
])
def test_an_invalid_traceparent_is_ignored(value):
    assert tracing.parse_traceparent(value) is None


def test_a_later_traceparent_version_may_carry_more_parts():
    assert tracing.parse_traceparent(f"01-{TRACE}-{SPAN}-01-what-comes-next") == TraceContext(TRACE, SPAN, True)


def test_cloud_trace_context_is_parsed_with_its_decimal_span_id():
    assert tracing.parse_cloud_trace_context(f"{TRACE}/1;o=1") == TraceContext(TRACE, "0000000000000001", True)
    assert tracing.parse_cloud_trace_context(f"{TRACE.upper()}/{int(SPAN, 16)};o=0") == TraceContext(TRACE, SPAN, False)
    assert tracing.parse_cloud_trace_context(f"{TRACE}/{2**64 - 1}") == TraceContext(TRACE, "f" * 16, False)
    assert tracing.parse_cloud_trace_context(TRACE) == TraceContext(TRACE, None, False)
    assert tracing.parse_cloud_trace_context(f"{TRACE}/0;o=1") == TraceContext(TRACE, None, True)
    assert tracing.parse_cloud_trace_context(f"{TRACE}/{2**64}") == TraceContext(TRACE, None, False)


@pytest.mark.parametrize("value", [None, "", "abc/1;o=1", f"{'0' * 32}/1;o=1", f"{TRACE}/x;o=1", f"{TRACE};o=x"])
def test_an_invalid_cloud_trace_context_is_ignored(value):
    assert tracing.parse_cloud_trace_context(value) is None


def test_traceparent_wins_over_cloud_trace_context_and_either_is_enough():
    other = "a" * 32
    both = {"traceparent": f"00-{TRACE}-{SPAN}-01", "X-Cloud-Trace-Context": f"{other}/5;o=1"}
    assert tracing.from_headers(both).trace_id == TRACE
    assert tracing.from_headers({"traceparent": "bad", "X-Cloud-Trace-Context": f"{other}/5;o=1"}).trace_id == other
    assert tracing.from_headers({}) is None and tracing.from_headers(None) is None


def test_formats_round_trip():
    ctx = TraceContext(TRACE, SPAN, True)
    assert tracing.format_traceparent(ctx) == f"00-{TRACE}-{SPAN}-01"
    assert tracing.parse_traceparent(tracing.format_traceparent(ctx)) == ctx
    assert tracing.parse_cloud_trace_context(tracing.format_cloud_trace_context(ctx)) == ctx
    assert tracing.from_stored(ctx.stored()) == ctx
    assert tracing.from_stored({"trace_id": "nope"}) is None and tracing.from_stored(None) is None


def test_log_fields_are_cloud_loggings_own():
    assert tracing.log_fields(TRACE, SPAN, True, "my-project") == {
        "logging.googleapis.com/trace": f"projects/my-project/traces/{TRACE}",
        "logging.googleapis.com/spanId": SPAN,
        "logging.googleapis.com/trace_sampled": True,
    }


# ---------------------------------------------------------------- spans and log lines


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


@pytest.fixture
def span_lines(monkeypatch):
    monkeypatch.setenv("TRACE_LOG_SPANS", "true")
    monkeypatch.delenv("TRACE_EXPORT", raising=False)
    monkeypatch.setenv("GCLOUD_PROJECT", "demo-flowsuite")


def test_every_line_of_a_span_carries_its_trace_and_the_spans_form_a_tree(span_lines, capsys):
    caller = TraceContext(TRACE, SPAN, True)
    with log.bind(correlation_id="corr-1"), tracing.span("orders_place", parent=caller, entry=True) as outer:
        log.info("inside")
        with tracing.span("inner"):
            leaf = tracing.begin("firestore.transaction")
            tracing.end(leaf)
    out = lines(capsys)
    inside = next(x for x in out if x["message"] == "inside")
    assert inside["logging.googleapis.com/trace"] == f"projects/demo-flowsuite/traces/{TRACE}"
    assert inside["logging.googleapis.com/spanId"] == outer.span_id
    assert inside["logging.googleapis.com/trace_sampled"] is True and inside["correlation_id"] == "corr-1"
    spans = {x["span"]["name"]: x["span"] for x in out if x["message"] == "span"}
    assert spans["orders_place"]["parent_id"] == SPAN
    assert spans["inner"]["parent_id"] == spans["orders_place"]["span_id"]
    assert spans["firestore.transaction"]["parent_id"] == spans["inner"]["span_id"]
    assert {s["trace_id"] for s in spans.values()} == {TRACE}
    assert all(s["duration_ms"] is not None and s["start"] for s in spans.values())
    assert tracing.current() is None


def test_without_a_caller_a_trace_is_started(span_lines, capsys):
    with tracing.span("ops_ping") as s:
        assert len(s.trace_id) == 32 and s.parent_id is None
    assert lines(capsys)[-1]["span"]["trace_id"] == s.trace_id


def test_a_failing_block_marks_its_span(span_lines, capsys):
    with pytest.raises(ValueError), tracing.span("boom"):
        raise ValueError("no")
    assert lines(capsys)[-1]["span"]["status"] == "error"


def test_the_envelope_carries_the_publishers_span_and_old_envelopes_have_none(span_lines):
    with tracing.span("orders_place", parent=TraceContext(TRACE, SPAN, True)) as s:
        env = events.envelope_for(ProbeSent(probe_id="p1"), subject="s", correlation_id="c")
    assert env.trace_context == TraceContext(TRACE, s.span_id, True)
    old = events.Envelope.model_validate({k: v for k, v in env.model_dump().items() if k != "trace"})
    assert old.trace is None and old.trace_context is None
    assert events.Envelope.model_validate(env.model_dump()).trace_context == env.trace_context


def test_the_webhook_joins_the_checkouts_trace_once_it_knows_the_payment(span_lines, capsys):
    checkout = TraceContext(TRACE, SPAN, True)
    request = TraceContext("b" * 32, "c" * 16, False)
    with tracing.span("payments_stripe_webhook", parent=request, joins_documents=True) as hook:
        log.info("before")
        with tracing.span("payments.apply_stripe_event") as apply:
            leaf = tracing.begin("firestore.transaction")
            assert tracing.join(checkout)
            assert not tracing.join(checkout)  # a retried transaction joins once
            env = events.envelope_for(ProbeSent(probe_id="p1"), subject="s", correlation_id="c")
            tracing.end(leaf)
        log.info("after")
    assert (hook.trace_id, hook.parent_id, hook.attributes["request_trace"]) == (TRACE, SPAN, "b" * 32)
    assert (apply.trace_id, apply.parent_id) == (TRACE, hook.span_id)
    assert env.trace_context == TraceContext(TRACE, apply.span_id, True)
    out = lines(capsys)
    by_message = {x["message"]: x for x in out if x["message"] != "span"}
    assert "b" * 32 in by_message["before"]["logging.googleapis.com/trace"]
    assert TRACE in by_message["after"]["logging.googleapis.com/trace"]
    spans = {x["span"]["name"]: x["span"] for x in out if x["message"] == "span"}
    assert spans["firestore.transaction"]["trace_id"] == TRACE
    assert spans["firestore.transaction"]["parent_id"] == apply.span_id


def test_the_envelope_names_the_span_that_published_it_for_the_consoles_waterfall(span_lines):
    with tracing.span("orders_on_payment_succeeded", parent=TraceContext(TRACE, SPAN, True)) as s:
        env = events.envelope_for(ProbeSent(probe_id="p1"), subject="s", correlation_id="c")
        given = events.envelope_for(ProbeSent(probe_id="p1"), subject="s", correlation_id="c",
                                    trace=TraceContext(TRACE, SPAN, True))
    assert (env.trace.name, env.trace.span_id) == ("orders_on_payment_succeeded", s.span_id)
    assert given.trace.name is None  # a trace passed in names no running span
    assert tracing.current_name() is None
    assert env.model_dump()["trace"] == {"trace_id": TRACE, "span_id": s.span_id, "sampled": True,
                                         "name": "orders_on_payment_succeeded"}


def test_a_processed_delivery_keeps_its_span_the_parent_of_the_events_it_publishes(span_lines):
    from flowsuite.core.bus.deliver import _processed_fields

    with tracing.span("orders_on_payment_succeeded", parent=TraceContext(TRACE, SPAN, True)) as s:
        fields = _processed_fields(1, "trigger", log.Timer())
    assert fields["trace"] == {"trace_id": TRACE, "span_id": s.span_id, "sampled": True}


def test_a_span_outside_a_joining_entry_joins_alone(span_lines):
    with tracing.span("payments_reconcile_stripe") as sweep, tracing.span("payments.apply_stripe_event") as apply:
        tracing.join(TraceContext(TRACE, SPAN, False))
    assert sweep.trace_id != TRACE and (apply.trace_id, apply.parent_id) == (TRACE, SPAN)


def test_export_without_the_exporter_package_says_what_to_install(span_lines, monkeypatch, capsys):
    monkeypatch.setenv("TRACE_EXPORT", "true")
    monkeypatch.setattr(tracing, "_export_broken", False)

    def missing():
        raise ImportError("No module named 'opentelemetry.exporter'")

    monkeypatch.setattr(tracing, "_load_exporter", missing)
    with tracing.span("ops_ping", entry=True):
        pass
    error = next(x for x in lines(capsys) if x["severity"] == "ERROR")
    assert tracing.EXPORTER_PACKAGE in error["message"] and "TRACE_EXPORT" in error["message"]


def test_a_stripe_call_span_is_named_without_its_ids(span_lines, capsys):
    class Http:
        def request_with_retries(self, method, url, headers, post_data=None, max_network_retries=None, **kw):
            return "{}", 200, {}

    http = tracing.instrument_http_client(Http(), "stripe")
    with tracing.span("payments_create_intent") as outer:
        http.request_with_retries("post", "https://api.stripe.com/v1/payment_intents/pi_3NxAbC12345678/cancel?x=1", {})
        http.request_with_retries("get", "http://127.0.0.1:8420/v1/payment_intents", {})
    spans = [x["span"] for x in lines(capsys) if x["message"] == "span"]
    assert [s["name"] for s in spans[:2]] == ["stripe POST /v1/payment_intents/{id}/cancel", "stripe GET /v1/payment_intents"]
    assert {s["parent_id"] for s in spans[:2]} == {outer.span_id} and spans[0]["attributes"]["http_status"] == 200


# ---------------------------------------------------------------- Error Reporting


def test_an_unexpected_exception_is_a_reported_error_event(span_lines, capsys, monkeypatch):
    monkeypatch.setenv("K_REVISION", "orders-place-00042-abc")
    monkeypatch.delenv("FLOWSUITE_VERSION", raising=False)
    with log.bind(function="orders_place", correlation_id="corr-9"), tracing.span("orders_place") as s:
        try:
            {}["missing"]
        except KeyError as exc:
            log.report("callable failed unexpectedly", exc, latency_ms=1.0)
    line = next(x for x in lines(capsys) if x["message"] == "callable failed unexpectedly")
    assert line["severity"] == "ERROR"
    assert line["@type"] == "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
    assert line["stack_trace"].startswith("Traceback (most recent call last):")
    assert "KeyError: 'missing'" in line["stack_trace"]
    assert line["serviceContext"] == {"service": "orders_place", "version": "orders-place-00042-abc"}
    assert line["logging.googleapis.com/trace"].endswith(s.trace_id) and line["correlation_id"] == "corr-9"


def test_the_error_event_is_pure_and_a_release_tag_wins_over_the_revision(monkeypatch):
    try:
        raise RuntimeError("down")
    except RuntimeError as exc:
        event = log.error_event(exc, service="svc", version="v1")
    assert event["serviceContext"] == {"service": "svc", "version": "v1"} and event["error"] == "RuntimeError: down"
    monkeypatch.setenv("K_REVISION", "rev-1")
    monkeypatch.setenv("FLOWSUITE_VERSION", "2026.11.1")
    assert log.deploy_version() == "2026.11.1"


# ---------------------------------------------------------------- off by default costs nothing at import


def test_importing_every_domain_imports_no_opentelemetry_sdk_or_exporter():
    code = ("import sys, main; "
            "print([m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))])")
    env = {**os.environ, "PYTHONPATH": str(FUNCTIONS)}
    env.pop("FUNCTION_TARGET", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=FUNCTIONS, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
