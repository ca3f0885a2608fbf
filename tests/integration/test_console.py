"""The ops console in a real browser (Chrome or Chromium, found by devtools/browser.py, through playwright-core)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from devtools import browser
from testkit import harness
from testkit.harness import call, eventually
from testkit.payments import confirm
from testkit.shop import order, place, product

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / ".run" / "screenshots"  # `make screenshots` copies them into docs/console/


def rows_named(waterfall: list[dict], name: str) -> list[dict]:
    return [row for row in waterfall if row["name"] == name]


def check_waterfall(waterfall: list[dict]) -> None:
    """The checkout as a waterfall: each hop under the one that caused it, bars where they ran."""
    by_key = {row["key"]: row for row in waterfall}
    one = {}
    for name in ("orders_place", "order.placed", "payments_create_intent", "payment.succeeded",
                 "orders_on_payment_succeeded", "order.paid", "notifications_on_order_paid"):
        found = rows_named(waterfall, name)
        assert len(found) == 1, (name, [r["name"] for r in waterfall])
        one[name] = found[0]
    kinds = {name: row["kind"] for name, row in one.items()}
    assert kinds == {"orders_place": "callable", "order.placed": "event", "payments_create_intent": "callable",
                     "payment.succeeded": "event", "orders_on_payment_succeeded": "delivery", "order.paid": "event",
                     "notifications_on_order_paid": "delivery"}
    for child, parent in (("order.placed", "orders_place"),  # by the name of the span that published it
                          ("orders_on_payment_succeeded", "payment.succeeded"),  # a delivery under its event
                          ("order.paid", "orders_on_payment_succeeded"),  # by the delivery's span id
                          ("notifications_on_order_paid", "order.paid")):
        assert one[child]["parent"] == one[parent]["key"], (child, one[child]["parent"])
    # Stripe's event was applied in a span of its own (the webhook's request), named by the event
    assert by_key[one["payment.succeeded"]["parent"]]["name"] == "payments.apply_stripe_event"
    for row in waterfall:  # nesting is drawn as depth; rows start on the checkout's own clock
        if row["parent"]:
            assert row["depth"] == by_key[row["parent"]]["depth"] + 1, row
        else:
            assert row["depth"] == 0, row
        assert row["start_ms"] >= 0 and row["duration_ms"] >= 0, row
        for bar in row["bars"]:
            # inside its track (an event's diamond is centred on its time: half of it may stick out)
            assert bar["left"] >= -12 and bar["left"] + bar["width"] <= bar["track"] + 12, (row["name"], bar)
    assert min(row["start_ms"] for row in waterfall) == 0
    chain = [one[n] for n in ("payment.succeeded", "orders_on_payment_succeeded", "order.paid", "notifications_on_order_paid")]
    assert [r["start_ms"] for r in chain] == sorted(r["start_ms"] for r in chain)
    processed = [b for b in one["orders_on_payment_succeeded"]["bars"] if b["outcome"] == "processed"]
    assert len(processed) == 1 and processed[0]["duration_ms"] > 0 and processed[0]["width"] >= 1
    assert processed[0]["start_ms"] >= one["payment.succeeded"]["start_ms"]
    failed = [b for b in one["notifications_on_order_paid"]["bars"] if b["outcome"] in ("failed", "dead")]
    assert failed and all(b["duration_ms"] >= 0 and b["width"] >= 1 for b in failed)  # the injected fault's attempts


def series_of(chart: dict) -> dict[str, dict]:
    return {s["label"]: s for s in chart["series"]}


def check_metrics(hour: dict, day: dict) -> None:
    """The charts plot this checkout's events, its deliveries' latency and the dead letter."""
    for window, buckets in ((hour, 60), (day, 96)):
        for name in ("events", "latency", "failures"):
            chart = window[name]
            assert chart, f"{name}: no chart drawn"
            assert chart["x"] == buckets and chart["canvas"][0] > 300 and chart["canvas"][1] > 100, (name, chart["canvas"])
            assert all(s["points"] == buckets for s in chart["series"]), name
    events = series_of(hour["events"])
    for kind in ("order.placed", "payment.succeeded", "order.paid"):
        assert kind in events, sorted(events)
        assert sum(events[kind]["values"]) >= 1, (kind, events[kind])
    # lines of the same counts in the same minutes overlap: the last one drawn covers the others
    assert sum(events[kind]["drawn"] for kind in events) > 0
    assert all(v == int(v) for v in events["order.placed"]["values"])  # an hour: one-minute buckets count events
    day_events = series_of(day["events"])
    assert 0 < sum(day_events["order.placed"]["values"]) <= sum(events["order.placed"]["values"])  # per minute of 15

    assert hour["latency_subscriber"] == "*" and set(series_of(hour["latency"])) == {"p50", "p95"}
    p50, p95 = series_of(hour["latency"])["p50"], series_of(hour["latency"])["p95"]
    assert p50["values"] and min(p50["values"]) >= 0 and p50["drawn"] + p95["drawn"] > 0, (p50, p95)
    assert len(p95["values"]) == len(p50["values"]) and max(p95["values"]) >= max(p50["values"])
    rows = {r["subscriber"]: r for r in hour["latency_rows"]}
    paid = rows["orders_on_payment_succeeded"]
    assert paid["count"] >= 1 and 0 <= paid["p50"] <= paid["p95"], paid
    assert rows["notifications_on_order_paid"]["count"] == 0  # dead-lettered, not processed (yet)

    failures = series_of(hour["failures"])
    assert set(failures) == {"failed attempts", "dead letters"}
    assert sum(failures["failed attempts"]["values"]) >= 1 and failures["failed attempts"]["drawn"] > 0
    assert sum(failures["dead letters"]["values"]) >= 1 and failures["dead letters"]["drawn"] > 0
    assert sum(series_of(day["failures"])["dead letters"]["values"]) >= 1
    assert "events" in hour["summary"] and "deliveries" in hour["summary"]


def test_the_console_gates_on_admin_traces_a_checkout_and_replays_a_dead_letter(db):
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        found = browser.find_browser()
    except browser.BrowserNotFound as exc:
        pytest.fail(f"the console test needs a browser: {exc}", pytrace=False)
    print(f"console test: browser {found.describe()}")
    url = harness.need("FLOWSUITE_CONSOLE_URL")
    member = harness.sign_up(f"member-{uuid.uuid4().hex[:6]}@example.com")
    admin = harness.user_with_role("admin")

    # a checkout to trace, and a dead letter to replay (its subscriber is fixed before the replay)
    db.document("_faults/notifications_on_order_paid").set({"always": True})
    out = place(member, [(product(db), 1)], headers={"X-Correlation-Id": f"console-{uuid.uuid4().hex[:10]}"})
    intent = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex}, user=member)
    confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"])
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="paid")
    letter = eventually(lambda: [d.id for d in db.collection("dead_letters").stream()], timeout=90, what="dead letter")[0]
    db.document("_faults/notifications_on_order_paid").delete()

    scenario = {
        "url": url, "browser": found.path, "browser_source": found.source, "screenshots": str(SHOTS),
        "member": {"email": member.email, "password": member.password},
        "admin": {"email": admin.email, "password": admin.password},
        "order_id": out["order_id"], "dead_letter": letter, "dead_subscriber": "notifications_on_order_paid",
    }
    run = subprocess.run(["node", str(ROOT / "tests/console/console_e2e.mjs"), json.dumps(scenario)], cwd=ROOT,
                         capture_output=True, text=True, timeout=240, env={**os.environ})
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    assert lines, run.stdout[-2000:] + run.stderr[-2000:]
    seen = json.loads(lines[-1])
    print(f"console test: browser version {seen.get('browser_version', 'unknown')}")
    assert "error" not in seen, f"{seen.get('error')} (browser: {found.describe()})"
    assert seen["csp_violations"] == []  # everything above ran under the policy

    assert seen["member_state"] == "denied"
    assert seen["member_nav_visible"] is False and seen["member_tables_visible"] is False
    assert seen["admin_state"] == "admin"
    assert seen["health_rows"] >= 15 and seen["health_dead_row"].strip() == "1"
    assert seen["event_rows"] >= 4
    for piece in ("order.placed", "payment.succeeded", "order.paid", "orders_on_payment_succeeded", "orders_place"):
        assert piece in seen["trace_text"], piece
    assert f"orders/{out['order_id']}" in seen["trace_docs"]
    check_waterfall(seen["waterfall"])
    assert seen["metrics_state"] == "ready", seen.get("metrics_hour", {}).get("summary")
    check_metrics(seen["metrics_hour"], seen["metrics_day"])
    assert "fault injected" in seen["dead_error"]
    assert "replayed" in seen["dead_after"] and "processed" in seen["dead_after"]
    assert harness.doc(db, f"deliveries/{letter}")["status"] == "processed"
    for shot in ("denied", "health", "events", "trace", "metrics", "dead-letters", "dead-letters-replayed"):
        assert (SHOTS / f"{shot}.png").stat().st_size > 5000


def test_the_console_is_served_with_its_content_security_policy():
    import requests

    url = harness.need("FLOWSUITE_CONSOLE_URL")
    for path in ("/", "/app.js", "/app.css", "/style.css"):
        r = requests.get(url + path, timeout=30)
        assert r.status_code == 200, path
        policy = r.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy, path
        assert r.headers.get("X-Content-Type-Options") == "nosniff"
