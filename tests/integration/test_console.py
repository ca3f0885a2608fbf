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
    assert "fault injected" in seen["dead_error"]
    assert "replayed" in seen["dead_after"] and "processed" in seen["dead_after"]
    assert harness.doc(db, f"deliveries/{letter}")["status"] == "processed"
    for shot in ("denied", "health", "events", "trace", "dead-letters", "dead-letters-replayed"):
        assert (SHOTS / f"{shot}.png").stat().st_size > 5000


def test_the_console_is_served_with_its_content_security_policy():
    import requests

    url = harness.need("FLOWSUITE_CONSOLE_URL")
    for path in ("/", "/app.js", "/style.css"):
        r = requests.get(url + path, timeout=30)
        assert r.status_code == 200, path
        policy = r.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy, path
        assert r.headers.get("X-Content-Type-Options") == "nosniff"
