"""Helpers for tests that shop: products and orders on the emulators."""

from __future__ import annotations

import concurrent.futures as cf
import uuid

from google.cloud.firestore_v1.base_query import FieldFilter

from testkit import harness
from testkit.harness import CallableError, call


def product(db, *, price: int = 1250, stock: int = 10, currency: str = "usd", active: bool = True, name: str = "Mug") -> str:
    product_id = f"p-{uuid.uuid4().hex[:10]}"
    db.document(f"products/{product_id}").set(
        {"name": name, "description": "", "image_url": "", "price": price, "currency": currency,
         "stock": stock, "active": active}
    )
    return product_id


def place(user, items: list[tuple[str, int]], key: str | None = None, headers=None, resets: int = 2) -> dict:
    return call("orders_place", {"items": [{"product_id": p, "quantity": q} for p, q in items],
                                 "idempotency_key": key or uuid.uuid4().hex}, user=user, headers=headers, resets=resets)


def start_payment(db, user, product_id: str, qty: int = 1) -> tuple[dict, dict, str]:
    """An order placed and its payment's intent created, as the app's checkout does: (the
    order's answer, the intent's answer, the PaymentIntent's id at Stripe). A dropped
    connection or `aborted` is retried with the same key, as an app does."""
    out = place(user, [(product_id, qty)])
    intent = harness.call_retrying("payments_create_intent",
                                   {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex}, user)
    return out, intent, harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"]


def stock(db, product_id: str) -> int:
    return harness.doc(db, f"products/{product_id}")["stock"]


def order(db, order_id: str) -> dict:
    return harness.doc(db, f"orders/{order_id}")


def events_of(db, event_type: str, **match) -> list[dict]:
    docs = [s.to_dict() for s in db.collection(f"topics/{event_type}/events").stream()]
    return [d for d in docs if all(d["data"].get(k) == v for k, v in match.items())]


def publish(db, data, subject: str = "test") -> str:
    from flowsuite.core import events

    batch = db.batch()
    envelope = events.publish(batch, data, subject=subject, db=db)
    batch.commit()
    return envelope.id


def checkout_cost(db, user, product_id: str) -> dict:
    """One whole checkout (place, intent, Stripe's webhook, order paid, receipt) under its
    own correlation id. Its Firestore reads and writes are summed from the ``fs_reads`` /
    ``fs_writes`` the client layer logs on each invocation's last line, per function;
    trigger invocations are counted per event against the event type's subscribers."""
    from flowsuite.core import bus

    from testkit.payments import confirm

    corr = f"cost-{uuid.uuid4().hex[:12]}"
    headers = {"X-Correlation-Id": corr}
    # no repeat of a dropped call: its log lines would count twice (a drop fails the count instead)
    out = place(user, [(product_id, 1)], headers=headers, resets=0)
    intent = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex},
                  user=user, headers=headers, resets=0)
    confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"])

    def settled():
        deliveries = [d.to_dict() for d in db.collection("deliveries").where(filter=FieldFilter("correlation_id", "==", corr)).stream()]
        if not any(d["subscriber"] == "notifications_on_order_paid" for d in deliveries):
            return None
        if any(d["status"] != "processed" for d in deliveries):
            return None
        lines = [x for x in harness.log_lines(corr) if x.get("correlation_id") == corr and "fs_reads" in x]
        finished = [x for x in lines if x["message"] == "delivery processed"]
        if len(finished) < len(deliveries) or not any(x["function"] == "payments_stripe_webhook" for x in lines):
            return None  # the last log lines are written after the commits
        return deliveries, lines

    deliveries, lines = harness.eventually(settled, timeout=60, what="the checkout settled and logged")
    per_function: dict[str, dict[str, int]] = {}
    for line in lines:
        counts = per_function.setdefault(line["function"], {"reads": 0, "writes": 0, "invocations": 0})
        counts["reads"] += line["fs_reads"]
        counts["writes"] += line["fs_writes"]
        counts["invocations"] += 1
    invocations: dict[str, int] = {}
    for line in lines:
        if line.get("via") == "trigger" and line.get("event_id"):
            invocations[line["event_id"]] = invocations.get(line["event_id"], 0) + 1
    published = db.collection_group("events").where(filter=FieldFilter("correlation_id", "==", corr)).stream()
    event_types = {e.id: e.get("type") for e in published}
    triggers = {event_id: {"type": kind, "invocations": invocations.get(event_id, 0),
                           "subscribers": len(bus.subscribers_of(kind))}
                for event_id, kind in event_types.items()}
    return {
        "correlation_id": corr,
        "reads": sum(c["reads"] for c in per_function.values()),
        "writes": sum(c["writes"] for c in per_function.values()),
        "per_function": per_function,
        "events": triggers,
    }


def buy_one(user, product_id: str):
    """One unit, as an app retries a contended order (`aborted`, nothing written) with the same
    key; the order's answer, or the CallableError it ended with."""
    try:
        return harness.call_retrying("orders_place", {"items": [{"product_id": product_id, "quantity": 1}],
                                                      "idempotency_key": uuid.uuid4().hex}, user, attempts=8)
    except CallableError as err:
        return err


def rush(product_id: str, buyers: list, threads: int) -> tuple[list[dict], list[CallableError]]:
    """Every buyer orders one unit at once: (orders placed, refusals)."""
    with cf.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda user: buy_one(user, product_id), buyers))
    return ([r for r in results if isinstance(r, dict)], [r for r in results if isinstance(r, CallableError)])


def latecomers_sell_out(product_id: str, left: int) -> CallableError:
    """New buyers, one at a time, take the ``left`` units; the next one's refusal is returned."""
    for _ in range(left):
        assert buy_one(harness.sign_up(), product_id)["status"] == "pending_payment"
    last = buy_one(harness.sign_up(), product_id)
    assert isinstance(last, CallableError)
    return last
