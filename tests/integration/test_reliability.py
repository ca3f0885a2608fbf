"""Faults and load on the real emulators: recovery without double effects, invariants under load."""

from __future__ import annotations

import concurrent.futures as cf
import random
import uuid

import pytest

from testkit import harness
from testkit.harness import CallableError, call, eventually
from testkit.payments import confirm, event, post_webhook, sign, stripe_client
from testkit.shop import events_of, order, place, product


def pay(db, user, order_id: str, key: str | None = None) -> dict:
    intent = call("payments_create_intent", {"order_id": order_id, "idempotency_key": key or uuid.uuid4().hex}, user=user)
    confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"])
    return intent


def test_a_failing_subscriber_is_dead_lettered_and_replayed_while_the_others_carry_on(admin, member, db):
    db.document("_faults/notifications_on_order_paid").set({"always": True})
    out = place(member, [(product(db), 1)])
    intent = pay(db, member, out["order_id"])
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid despite the failing subscriber")
    paid_event = eventually(lambda: events_of(db, "order.paid", order_id=out["order_id"]), what="order.paid")[0]
    letter_id = f"{paid_event['id']}:notifications_on_order_paid"
    letter = eventually(lambda: harness.doc(db, f"dead_letters/{letter_id}"), timeout=90, what="dead letter")
    assert letter["attempts"] == 3 and "fault injected" in letter["error"]
    assert harness.doc(db, f"payments/{intent['payment_id']}")["status"] == "succeeded"
    assert harness.doc(db, f"deliveries/{paid_event['id']}:notifications_on_order_paid")["status"] == "dead"
    receipts = lambda: [n for n in db.collection(f"users/{member.uid}/notifications").stream() if n.get("type") == "order_paid"]  # noqa: E731
    assert receipts() == []

    db.document("_faults/notifications_on_order_paid").delete()
    # `all`: a late trigger of an earlier test may have left a dead letter of its own here too
    assert {"id": letter_id, "outcome": "processed"} in call("ops_replay_dead_letters", {"all": True}, user=admin)["replayed"]
    assert len(receipts()) == 1
    assert harness.doc(db, f"dead_letters/{letter_id}")["status"] == "replayed"


def test_a_crash_between_the_stripe_call_and_its_write_is_recovered_without_a_double_charge(member, db):
    out = place(member, [(product(db, price=4200), 1)])
    key = uuid.uuid4().hex
    db.document("_faults/payments.after_stripe_intent").set({"remaining": 1})
    with pytest.raises(CallableError) as err:
        call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": key}, user=member)
    assert err.value.code == "internal"
    assert list(db.collection("payments").stream()) == []  # the crash left no payment behind...
    effect = harness.doc(db, f"effects/stripe-intent-pay_{out['order_id']}")
    assert effect["state"] == "SUCCEEDED"  # ...but the intent Stripe created is remembered

    retry = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": key}, user=member)
    assert harness.doc(db, f"effects/stripe-intent-pay_{out['order_id']}")["attempts"] == 1  # Stripe called once
    assert retry["client_secret"].startswith(harness.doc(db, f"payments/{retry['payment_id']}")["provider_ref"])
    confirm(harness.doc(db, f"payments/{retry['payment_id']}")["provider_ref"])
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="paid")
    payments = [p.to_dict() for p in db.collection("payments").stream()]
    assert [(p["order_id"], p["status"], p["amount"]) for p in payments] == [(out["order_id"], "succeeded", 4200)]


def crashed_after_stripe(member, db) -> tuple[dict, str, str]:
    """An order whose payments_create_intent crashed between Stripe and its record: (the
    order, its payment id, the intent Stripe made, which only the effect record knows)."""
    out = place(member, [(product(db, price=4200, stock=3), 1)])
    payment_id = f"pay_{out['order_id']}"
    db.document("_faults/payments.after_stripe_intent").set({"remaining": 1})
    with pytest.raises(CallableError):
        call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex}, user=member)
    return out, payment_id, harness.doc(db, f"effects/stripe-intent-{payment_id}")["result"]["id"]


def test_cancelling_an_order_closes_the_intent_a_crash_left_unrecorded(member, db):
    """Nobody retried the crashed call and the user cancels: the closed payment records the
    intent the effect record remembers and closes it at Stripe, so no orphan stays open."""
    out, payment_id, pi = crashed_after_stripe(member, db)
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="order cancelled")
    closed = harness.doc(db, f"payments/{payment_id}")
    assert (closed["status"], closed["provider_ref"]) == ("canceled", pi)
    intent = stripe_client().v1.payment_intents.retrieve(pi)
    assert intent.status == "canceled" and intent.amount_received == 0
    assert len(events_of(db, "order.cancelled", order_id=out["order_id"])) == 1


def test_an_intent_nobody_recorded_is_taken_by_the_payment_its_cancel_closed(member, db):
    """As above, but the crash came before the effect record kept Stripe's answer (its record
    gone), so the cancel records a closed payment with no intent; an operator then cancels the
    orphan in the Stripe dashboard. Stripe's payment_intent.canceled names our payment in its
    metadata: the closed payment takes the intent, instead of the webhook answering 5xx, which
    Stripe would retry for days."""
    out, payment_id, pi = crashed_after_stripe(member, db)
    db.document(f"effects/stripe-intent-{payment_id}").delete()
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="order cancelled")
    closed = harness.doc(db, f"payments/{payment_id}")
    assert (closed["status"], closed["provider_ref"]) == ("canceled", None)

    stripe_client().v1.payment_intents.cancel(pi)  # an operator closes the orphan in the dashboard
    taken = eventually(lambda: (p := harness.doc(db, f"payments/{payment_id}")) and p.get("provider_ref") == pi and p,
                       what="the closed payment took the intent")
    assert taken["status"] == "canceled" and stripe_client().v1.payment_intents.retrieve(pi).amount_received == 0
    assert len(events_of(db, "order.cancelled", order_id=out["order_id"])) == 1


@pytest.mark.timeout(420)
def test_fifty_users_check_out_at_once_and_the_invariants_hold(db):
    initial = {product(db, price=random.choice([500, 1250, 3000]), stock=8): 8 for _ in range(10)}
    products = list(initial)
    import time

    t0 = time.monotonic()
    users = [harness.sign_up() for _ in range(50)]
    print(f"\nload: 50 sign-ups {time.monotonic() - t0:.1f} s")

    def checkout(user) -> str:
        items = [{"product_id": p, "quantity": random.randint(1, 2)} for p in random.sample(products, random.randint(1, 2))]
        try:
            out = harness.call_retrying("orders_place", {"items": items, "idempotency_key": uuid.uuid4().hex}, user)
        except CallableError as err:
            if err.code == "failed-precondition":
                return "sold_out"
            if err.code == "aborted":
                return "gave_up"
            raise
        # The order is placed: the app keeps retrying its payment until it starts.
        intent = harness.call_retrying("payments_create_intent", {"order_id": out["order_id"],
                                                                  "idempotency_key": uuid.uuid4().hex}, user, attempts=8)
        confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"])
        return out["order_id"]

    with cf.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(checkout, users))
    placed = [r for r in results if r not in ("sold_out", "gave_up")]
    print(f"load: {len(placed)} checkouts placed and paid {time.monotonic() - t0:.1f} s")
    assert len(placed) >= 20, results

    def paid_or_resend() -> bool:
        # Stripe retries a webhook that answered 5xx (the emulator can abort a contended
        # transaction); localstripe does not, so resend what is still unpaid, as Stripe would.
        unpaid = [o for o in placed if order(db, o)["status"] != "paid"]
        for order_id in unpaid:
            pi = harness.doc(db, f"payments/pay_{order_id}")["provider_ref"]
            body = event("payment_intent.succeeded", {"id": pi, "object": "payment_intent"})
            post_webhook(body, sign(body))
        return not unpaid

    eventually(paid_or_resend, timeout=180, interval=5, what="every order paid")
    def settled():
        mine = harness.of_this_test(db, [s.to_dict() for s in db.collection("deliveries").stream()])
        return all(d.get("status") == "processed" for d in mine)
    eventually(settled, timeout=120, what="every delivery processed")
    print(f"load: settled {time.monotonic() - t0:.1f} s")

    orders = [s.to_dict() for s in db.collection("orders").stream()]
    sold = {p: 0 for p in products}
    for o in orders:
        assert o["status"] == "paid"
        for line in o["items"]:
            sold[line["product_id"]] += line["quantity"]
    for p in products:
        left = harness.doc(db, f"products/{p}")["stock"]
        assert left >= 0 and left + sold[p] == initial[p], p
    payments = [s.to_dict() for s in db.collection("payments").stream()]
    by_order = {}
    for pay_doc in payments:
        by_order.setdefault(pay_doc["order_id"], []).append(pay_doc["status"])
    assert all(by_order.get(o["order_id"]) == ["succeeded"] for o in orders)
    deliveries = harness.of_this_test(db, [s.to_dict() for s in db.collection("deliveries").stream()])
    keys = [(d["event_id"], d["subscriber"]) for d in deliveries]
    assert len(keys) == len(set(keys))
    assert all(d["status"] == "processed" for d in deliveries)
    paid_events = [e for e in (s.to_dict() for s in db.collection("topics/order.paid/events").stream())]
    assert sorted(e["data"]["order_id"] for e in paid_events) == sorted(o["order_id"] for o in orders)
    assert harness.of_this_test(db, [s.to_dict() for s in db.collection("dead_letters").stream()]) == []
