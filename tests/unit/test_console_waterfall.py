"""The console's trace waterfall (console/src/waterfall.js, pure), run in Node: each hop under the one that caused it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = (Path(__file__).resolve().parents[2] / "console" / "src" / "waterfall.js").as_uri()
T0 = 1_800_000_000_000  # ms


def build(docs: dict) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed (devtools/setup.sh installs the console's build with npm)", pytrace=False)
    script = (f"const {{ buildWaterfall }} = await import({json.dumps(MODULE)});"
              f"process.stdout.write(JSON.stringify(buildWaterfall({json.dumps(docs)})));")
    run = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def checkout(delivery_trace: bool = True) -> dict:
    def trace(span: str, name: str) -> dict:
        return {"trace_id": "t" * 32, "span_id": span, "sampled": True, "name": name}

    return {
        "orders": [{"id": "o1", "created": T0}],
        "payments": [{"id": "p1", "created": T0 + 300, "trace": {"trace_id": "t" * 32, "span_id": "intent"}}],
        "events": [
            {"id": "e1", "type": "order.placed", "source": "orders", "subject": "orders/o1", "time": T0 + 5,
             "trace": trace("place", "orders_place")},
            {"id": "e2", "type": "payment.succeeded", "source": "payments", "subject": "payments/p1", "time": T0 + 900,
             "trace": trace("apply", "payments.apply_stripe_event")},
            {"id": "e3", "type": "order.paid", "source": "orders", "subject": "orders/o1", "time": T0 + 960,
             "trace": trace("paid-delivery", "orders_on_payment_succeeded")},
        ],
        "deliveries": [
            {"id": "e2:orders_on_payment_succeeded", "subscriber": "orders_on_payment_succeeded", "event_id": "e2",
             "status": "processed", "attempts": 1, "processed": T0 + 970, "duration_ms": 40,
             "trace": {"span_id": "paid-delivery"} if delivery_trace else None,
             "history": [{"attempt": 1, "at": T0 + 970, "duration_ms": 40, "outcome": "processed", "via": "trigger"}]},
            {"id": "e3:notifications_on_order_paid", "subscriber": "notifications_on_order_paid", "event_id": "e3",
             "status": "dead", "attempts": 2,
             "history": [{"attempt": 1, "at": T0 + 1000, "duration_ms": 10, "outcome": "failed", "via": "trigger"},
                         {"attempt": 2, "at": T0 + 2000, "duration_ms": 12, "outcome": "dead", "via": "retry"}]},
        ],
    }


def by_name(waterfall: dict) -> dict[str, dict]:
    return {row["name"]: row for row in waterfall["rows"]}


def test_each_hop_nests_under_the_one_that_caused_it_in_time_order():
    waterfall = build(checkout())
    rows = by_name(waterfall)
    assert [r["name"] for r in waterfall["rows"]] == [
        "orders_place", "order.placed", "payments_create_intent", "payments.apply_stripe_event", "payment.succeeded",
        "orders_on_payment_succeeded", "order.paid", "notifications_on_order_paid"]
    parent = {name: row["parent"] for name, row in rows.items()}
    assert parent["order.placed"] == rows["orders_place"]["key"]  # the publishing span's name: the order's callable
    assert parent["payment.succeeded"] == rows["payments.apply_stripe_event"]["key"]  # a span no document stands for
    assert parent["orders_on_payment_succeeded"] == rows["payment.succeeded"]["key"]  # a delivery under its event
    assert parent["order.paid"] == rows["orders_on_payment_succeeded"]["key"]  # the delivery's span id
    assert parent["notifications_on_order_paid"] == rows["order.paid"]["key"]
    assert [rows[n]["depth"] for n in ("payments.apply_stripe_event", "payment.succeeded", "orders_on_payment_succeeded",
                                        "order.paid", "notifications_on_order_paid")] == [0, 1, 2, 3, 4]
    assert (waterfall["start"], waterfall["end"]) == (T0, T0 + 2000)


def test_a_delivery_is_its_time_queued_then_each_attempt():
    rows = by_name(build(checkout()))
    paid = rows["orders_on_payment_succeeded"]
    assert [(s["outcome"], s["start"] - T0, s["end"] - T0) for s in paid["segments"]] == [
        ("queued", 900, 930), ("processed", 930, 970)]
    assert (paid["start"] - T0, paid["end"] - T0) == (900, 970)
    receipt = rows["notifications_on_order_paid"]
    assert [(s["outcome"], s["start"] - T0, s["end"] - T0) for s in receipt["segments"]] == [
        ("queued", 960, 990), ("failed", 990, 1000), ("dead", 1988, 2000)]


def test_a_delivery_recorded_before_spans_were_kept_is_found_by_its_name():
    rows = by_name(build(checkout(delivery_trace=False)))
    assert rows["order.paid"]["parent"] == rows["orders_on_payment_succeeded"]["key"]


def test_nothing_found_is_an_empty_waterfall():
    assert build({}) == {"rows": [], "start": 0, "end": 0}
