"""Issue 18: one checkout, one trace, read back from the emulator's function logs.

Started with a known ``traceparent``, every log line of every hop (both callables,
Stripe's webhook, each delivery, a Cloud Tasks retry) carries that trace id; the span
lines form one tree whose root hangs under the caller's span; an unexpected
exception is one ReportedErrorEvent line with its stack trace.
"""

from __future__ import annotations

import uuid

from testkit import harness
from testkit.harness import CallableError, call, eventually
from testkit.payments import confirm
from testkit.shop import place, product

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_FIELD = "logging.googleapis.com/spanId"
REPORTED = "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
PROJECT = "demo-flowsuite"


def traceparent(trace_id: str, span_id: str | None = None) -> str:
    return f"00-{trace_id}-{span_id or uuid.uuid4().hex[:16]}-01"


def spans_of(lines: list[dict]) -> dict[str, dict]:
    return {x["span"]["span_id"]: x["span"] for x in lines if x.get("message") == "span"}


def test_a_checkout_keeps_one_trace_through_every_hop_and_its_spans_form_a_tree(member, db):
    trace_id, corr = uuid.uuid4().hex, f"trace-{uuid.uuid4().hex[:12]}"
    place_span, intent_span = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    # the receipt's first attempt fails: its retry (a Cloud Task) must stay in the trace too
    db.document("_faults/notifications_on_order_paid").set({"remaining": 1})
    pid = product(db)
    out = place(member, [(pid, 1)], headers={"X-Correlation-Id": corr, "traceparent": traceparent(trace_id, place_span)})
    intent = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex},
                  user=member, headers={"X-Correlation-Id": corr, "traceparent": traceparent(trace_id, intent_span)})
    payment = harness.doc(db, f"payments/{intent['payment_id']}")
    assert payment["trace"]["trace_id"] == trace_id
    confirm(payment["provider_ref"])  # Stripe's webhook follows, in a trace of its own request

    def settled():
        lines = harness.log_lines(corr)
        done = [x for x in lines if x.get("message") == "delivery processed"
                and x.get("function") == "notifications_on_order_paid"]
        hook = [x for x in lines if x.get("message") == "webhook applied"]
        return lines if done and hook else None

    lines = eventually(settled, timeout=90, what="the receipt delivered after its retry")
    lines = [x for x in lines if x.get("correlation_id") == corr
             or x.get("span", {}).get("attributes", {}).get("correlation_id") == corr]

    # every line of every hop carries the trace, beside the correlation id
    functions = set()
    for line in lines:
        if line.get("message") == "span":
            assert line["span"]["trace_id"] == trace_id, line
            continue
        assert line[TRACE_FIELD] == f"projects/{PROJECT}/traces/{trace_id}", line
        assert len(line[SPAN_FIELD]) == 16 and isinstance(line["logging.googleapis.com/trace_sampled"], bool), line
        functions.add(line.get("function"))
    assert {"orders_place", "payments_create_intent", "payments_stripe_webhook", "orders_on_payment_succeeded",
            "notifications_on_order_paid"} <= functions

    # the failed attempt was an Error Reporting event of the same trace, and the retry stayed in it
    failed = [x for x in lines if x.get("message") == "delivery failed; will retry"]
    assert failed and failed[0]["@type"] == REPORTED and "InjectedFaultError" in failed[0]["stack_trace"]
    assert failed[0]["serviceContext"]["service"] == "notifications_on_order_paid"
    vias = {x["via"] for x in lines if x.get("function") == "notifications_on_order_paid" and "via" in x}
    assert vias & {"retry", "sweep"}

    # the spans form one tree: each parent is another span of the checkout, or the caller's span
    spans = spans_of(lines)
    by_name: dict[str, list[dict]] = {}
    for s in spans.values():
        by_name.setdefault(s["name"], []).append(s)
        assert s["parent_id"] in spans or s["parent_id"] in (place_span, intent_span), s
        assert s["duration_ms"] is not None and s["start"]
    (placed,) = by_name["orders_place"]
    (created,) = by_name["payments_create_intent"]
    assert placed["parent_id"] == place_span and created["parent_id"] == intent_span
    hooks = [s for s in by_name["payments_stripe_webhook"] if s["parent_id"] == created["span_id"]]
    assert hooks and hooks[0]["attributes"]["request_trace"] != trace_id
    applies = [s for s in by_name["payments.apply_stripe_event"] if s["parent_id"] in {h["span_id"] for h in hooks}]
    assert applies
    (paid,) = [s for s in by_name["orders_on_payment_succeeded"] if s["status"] == "ok"]
    assert paid["parent_id"] in {a["span_id"] for a in applies}
    receipts = by_name["notifications_on_order_paid"]
    assert len(receipts) >= 2 and {r["parent_id"] for r in receipts} == {paid["span_id"]}  # the retry too
    assert any(s["name"] == "firestore.transaction" and s["parent_id"] == placed["span_id"] for s in spans.values())
    assert any(s["name"].startswith("stripe POST /v1/payment_intents") and s["parent_id"] == created["span_id"]
               for s in spans.values())


def test_without_a_traceparent_the_cloud_trace_header_is_read(admin):
    trace_id, corr = uuid.uuid4().hex, f"trace-{uuid.uuid4().hex[:12]}"
    call("ops_ping", {}, user=admin, headers={"X-Correlation-Id": corr,
                                              "X-Cloud-Trace-Context": f"{trace_id}/12345;o=1"})
    lines = eventually(lambda: [x for x in harness.log_lines(corr) if x.get("message") == "callable ok"],
                       what="the call's line")
    assert lines[0][TRACE_FIELD] == f"projects/{PROJECT}/traces/{trace_id}"
    assert lines[0]["logging.googleapis.com/trace_sampled"] is True
    (root,) = [s for s in spans_of(harness.log_lines(corr)).values() if s["name"] == "ops_ping"]
    assert root["parent_id"] == f"{12345:016x}"


def test_an_internal_error_is_one_reported_error_event_with_its_stack_trace(admin):
    trace_id, corr = uuid.uuid4().hex, f"trace-{uuid.uuid4().hex[:12]}"
    try:
        call("ops_diagnose", {"code": "internal"}, user=admin,
             headers={"X-Correlation-Id": corr, "traceparent": traceparent(trace_id)})
    except CallableError as err:
        assert err.code == "internal"
    else:
        raise AssertionError("ops_diagnose did not fail")
    reported = eventually(lambda: [x for x in harness.log_lines(corr) if x.get("@type") == REPORTED],
                          what="the Error Reporting line")
    assert len(reported) == 1
    (line,) = reported
    assert line["severity"] == "ERROR" and line["message"] == "callable failed unexpectedly"
    assert line["stack_trace"].startswith("Traceback (most recent call last):")
    assert line["serviceContext"]["service"] == "ops_diagnose" and line["serviceContext"]["version"]
    assert line[TRACE_FIELD] == f"projects/{PROJECT}/traces/{trace_id}" and line["correlation_id"] == corr
    (root,) = [s for s in spans_of(harness.log_lines(corr)).values() if s["name"] == "ops_diagnose"]
    assert root["status"] == "error" and root["trace_id"] == trace_id
