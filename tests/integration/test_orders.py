"""Orders on the real emulators: pricing, atomic stock, the state machine, rules."""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import uuid

import pytest
from flowsuite.payments.events import (
    PaymentCanceled,
    PaymentDisputed,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)

from testkit import harness
from testkit.harness import AppClient, CallableError, Denied, Ref, call, eventually
from testkit.shop import events_of, latecomers_sell_out, order, place, product, publish, rush, stock


def test_staff_upsert_and_archive_products(staff, member, db):
    out = call("orders_upsert_product", {"name": "Tea", "price": 450, "currency": "eur", "stock": 3,
                                         "idempotency_key": uuid.uuid4().hex}, user=staff)
    stored = harness.doc(db, f"products/{out['product_id']}")
    assert (stored["price"], stored["currency"], stored["stock"], stored["active"]) == (450, "eur", 3, True)
    assert call("orders_archive_product", {"product_id": out["product_id"]}, user=staff)["active"] is False
    with pytest.raises(CallableError) as err:
        call("orders_upsert_product", {"name": "Free", "price": 0, "currency": "usd", "stock": 1,
                                       "idempotency_key": uuid.uuid4().hex}, user=member)
    assert err.value.code == "permission-denied"
    with pytest.raises(CallableError) as err:
        call("orders_upsert_product", {"name": "Bad", "price": -1, "currency": "xxx", "stock": 1,
                                       "idempotency_key": uuid.uuid4().hex}, user=staff)
    assert err.value.code == "invalid-argument" and set(err.value.fields) == {"price", "currency"}


def test_repeats_of_one_product_upsert_key_apply_it_once(staff, db):
    """orders_upsert_product stores its answer in the transaction of its effect: repeats of one
    key, concurrent ones included, create a new product once and add a stock_delta once, and
    leave no key in progress."""
    from flowsuite.core import idempotency

    def upsert_six_times(data: dict) -> list[dict]:
        with cf.ThreadPoolExecutor(6) as pool:
            # six at once contend on one key's record: `aborted` (retryable, nothing written) is
            # retried with a growing pause, as an app does; four tries were not always enough in CI
            return list(pool.map(lambda _: harness.call_retrying("orders_upsert_product", data, staff, attempts=8),
                                 range(6)))

    created = upsert_six_times({"name": "Tea", "price": 450, "currency": "eur", "stock": 3,
                                "idempotency_key": uuid.uuid4().hex})
    assert len({a["product_id"] for a in created}) == 1
    product_id = created[0]["product_id"]
    assert [p.id for p in db.collection("products").stream()] == [product_id]
    added = upsert_six_times({"product_id": product_id, "name": "Tea", "price": 450, "currency": "eur",
                              "stock_delta": 100, "idempotency_key": uuid.uuid4().hex})
    assert {a["stock"] for a in added} == {103} and stock(db, product_id) == 103
    records = [s.to_dict() for s in db.collection(idempotency.COLLECTION).stream()]
    assert sorted(r["status"] for r in records) == ["completed", "completed"]
    assert {r["function"] for r in records} == {"orders_upsert_product"}


def test_an_upsert_key_reused_with_another_payload_is_refused_and_a_refused_edit_keeps_no_key(staff, db):
    """orders_upsert_product's one-transaction idempotency: a key that applied answers only its own
    payload (another one is refused and changes nothing); an edit refused inside the transaction
    (stale expected_stock) writes nothing, its key included, so the corrected retry applies."""
    from flowsuite.core import idempotency

    created = call("orders_upsert_product", {"name": "Tea", "price": 450, "currency": "eur", "stock": 3,
                                             "idempotency_key": (first := uuid.uuid4().hex)}, user=staff)
    with pytest.raises(CallableError) as err:
        call("orders_upsert_product", {"name": "Tea", "price": 1, "currency": "eur", "stock": 3,
                                       "idempotency_key": first}, user=staff)
    assert err.value.code == "invalid-argument" and err.value.fields == ["idempotency_key"]
    assert [(p.id, p.get("price")) for p in db.collection("products").stream()] == [(created["product_id"], 450)]

    edit = {"product_id": created["product_id"], "name": "Tea", "price": 450, "currency": "eur", "stock": 9,
            "expected_stock": 2, "idempotency_key": uuid.uuid4().hex}
    with pytest.raises(CallableError) as err:
        call("orders_upsert_product", edit, user=staff)
    assert err.value.code == "failed-precondition" and err.value.details["stock"] == 3
    assert stock(db, created["product_id"]) == 3 and len(list(db.collection(idempotency.COLLECTION).stream())) == 1
    assert call("orders_upsert_product", {**edit, "expected_stock": 3}, user=staff)["stock"] == 9
    assert stock(db, created["product_id"]) == 9


def test_an_order_is_priced_on_the_server_and_reserves_stock(member, db):
    mug, tea = product(db, price=1250, stock=10), product(db, price=300, stock=5, name="Tea")
    out = place(member, [(mug, 2), (tea, 1)], headers={"X-Correlation-Id": "corr-order-0001"})
    assert (out["status"], out["total"], out["currency"]) == ("pending_payment", 2800, "usd")
    assert [(i["product_id"], i["unit_price"], i["quantity"]) for i in out["items"]] == [(mug, 1250, 2), (tea, 300, 1)]
    assert (stock(db, mug), stock(db, tea)) == (8, 4)
    stored = order(db, out["order_id"])
    assert stored["uid"] == member.uid and stored["user_ref"].path == f"users/{member.uid}"
    assert stored["correlation_id"] == "corr-order-0001"
    assert stored["items"][0]["product_ref"].path == f"products/{mug}"
    placed = events_of(db, "order.placed", order_id=out["order_id"])
    assert len(placed) == 1 and placed[0]["correlation_id"] == "corr-order-0001" and placed[0]["data"]["total"] == 2800


def test_twenty_concurrent_orders_for_five_in_stock(db):
    item = product(db, stock=5)
    buyers = [harness.sign_up() for _ in range(20)]  # one order each: the unpaid-order limit is per user

    placed, refused = rush(item, buyers, threads=10)
    # Under the emulator's lock timeouts a buyer may still hold `aborted` after its retries
    # (nothing written); never `internal`, never more than the stock.
    assert len(placed) <= 5 and len(placed) + len(refused) == 20
    assert {r.code for r in refused} <= {"failed-precondition", "aborted"}
    assert all(r.details["available"] == 0 and r.details["product_id"] == item
               for r in refused if r.code == "failed-precondition")
    assert stock(db, item) == 5 - len(placed)
    last = latecomers_sell_out(item, 5 - len(placed))  # one at a time, they take what is left: exactly five
    assert last.code == "failed-precondition" and last.details["available"] == 0
    assert stock(db, item) == 0
    assert len(list(db.collection("orders").stream())) == 5


def test_the_same_key_twice_is_one_order_and_one_reservation(member, db):
    item = product(db, stock=10)
    key = uuid.uuid4().hex
    first, second = place(member, [(item, 3)], key), place(member, [(item, 3)], key)
    assert first == second
    assert stock(db, item) == 7 and len(list(db.collection("orders").stream())) == 1


BAD = {
    "unknown product": (lambda db: [{"product_id": "nope", "quantity": 1}], "invalid-argument", "items.0.product_id"),
    "archived product": (lambda db: [{"product_id": product(db, active=False), "quantity": 1}], "failed-precondition", "items.0.product_id"),
    "mixed currencies": (lambda db: [{"product_id": product(db), "quantity": 1},
                                     {"product_id": product(db, currency="eur"), "quantity": 1}], "invalid-argument", "items.1.product_id"),
    "quantity 0": (lambda db: [{"product_id": product(db), "quantity": 0}], "invalid-argument", "items.0.quantity"),
    "quantity 100": (lambda db: [{"product_id": product(db), "quantity": 100}], "invalid-argument", "items.0.quantity"),
    "51 lines": (lambda db: [{"product_id": f"p{i}", "quantity": 1} for i in range(51)], "invalid-argument", "items"),
    "no lines": (lambda db: [], "invalid-argument", "items"),
    "quantity as text": (lambda db: [{"product_id": product(db), "quantity": "two"}], "invalid-argument", "items.0.quantity"),
    "items not a list": (lambda db: "mug", "invalid-argument", "items"),
    "duplicate lines": (lambda db: [{"product_id": "same", "quantity": 1}] * 2, "invalid-argument", "items"),
    "not enough stock": (lambda db: [{"product_id": product(db, stock=2), "quantity": 3}], "failed-precondition", "items.0.quantity"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_orders_are_refused_with_the_field_and_write_nothing(member, db, case):
    make_items, code, field = BAD[case]
    items = make_items(db)
    stock_before = {s.id: s.get("stock") for s in db.collection("products").stream()}
    with pytest.raises(CallableError) as err:
        call("orders_place", {"items": items, "idempotency_key": uuid.uuid4().hex}, user=member)
    assert err.value.code == code
    assert field in err.value.fields
    assert list(db.collection("orders").stream()) == []
    assert list(db.collection("topics/order.placed/events").stream()) == []
    assert {s.id: s.get("stock") for s in db.collection("products").stream()} == stock_before


def test_a_missing_idempotency_key_is_refused(member, db):
    with pytest.raises(CallableError) as err:
        call("orders_place", {"items": [{"product_id": product(db), "quantity": 1}]}, user=member)
    assert err.value.code == "invalid-argument" and err.value.fields == ["idempotency_key"]


def paid(db, member, item=None, qty: int = 1) -> dict:
    item = item or product(db)
    out = place(member, [(item, qty)])
    publish(db, PaymentSucceeded(payment_id="pay-" + out["order_id"], order_id=out["order_id"], uid=member.uid,
                                 amount=out["total"], currency="usd"))
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    return out


def test_payment_succeeded_makes_the_order_paid(member, db):
    out = paid(db, member)
    stored = order(db, out["order_id"])
    assert stored["payment_id"] == "pay-" + out["order_id"]
    assert [h["status"] for h in stored["history"]] == ["pending_payment", "paid"]
    eventually(lambda: events_of(db, "order.paid", order_id=out["order_id"]), what="order.paid")


def test_a_failed_payment_does_not_touch_the_order(member, db):
    import main  # noqa: F401 - every domain's subscribers, as discovery sees them
    from flowsuite.core import bus

    item = product(db, stock=4)
    out = place(member, [(item, 3)])
    publish(db, PaymentFailed(payment_id="pay-x", order_id=out["order_id"], uid=member.uid, reason="card_declined"))
    assert [s.domain for s in bus.subscribers_of("payment.failed")] == ["notifications"]
    eventually(lambda: [d for d in db.collection("deliveries").stream() if d.get("status") == "processed"],
               what="the customer was told")
    assert order(db, out["order_id"])["status"] == "pending_payment" and stock(db, item) == 1


def test_cancelling_a_paid_order_then_a_refund_makes_it_refunded(member, db):
    item = product(db, stock=4)
    out = paid(db, member, item, 2)
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelled"
    assert stock(db, item) == 4
    event = events_of(db, "order.cancelled", order_id=out["order_id"])[0]["data"]
    assert event["was_paid"] is True and event["payment_id"] == "pay-" + out["order_id"]
    publish(db, PaymentRefunded(payment_id="pay-" + out["order_id"], order_id=out["order_id"], uid=member.uid,
                                amount=out["total"], currency="usd"))
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", what="refunded")


def refund_waiting(db, event_id: str) -> dict:
    """The refund's delivery to orders, failed with "retry later" (not dead, nothing applied)."""
    record = harness.doc(db, f"deliveries/{event_id}:orders_on_payment_refunded") or {}
    return record if record.get("status") == "failed" and "RetryLaterError" in (record.get("last_error") or "") else {}


def test_a_full_refund_delivered_before_its_success_refunds_the_order_once_it_is_paid(member, db):
    """Delivery is unordered: payment.refunded can reach orders before payment.succeeded (a
    Dashboard refund while the success is being retried). The refund waits (retry later, no
    attempt used up) until the success has paid the order, then refunds it: the end state is
    the one in-order delivery reaches (paid, then refunded), never `paid`."""
    item = product(db, stock=4)
    out = place(member, [(item, 2)])
    payment_id = "pay-" + out["order_id"]
    refund = publish(db, PaymentRefunded(payment_id=payment_id, order_id=out["order_id"], uid=member.uid,
                                         amount=out["total"], currency="usd", amount_refunded=out["total"], full=True,
                                         reason="refunded_in_stripe"))
    eventually(lambda: refund_waiting(db, refund), what="the refund waits for the success")
    waiting = order(db, out["order_id"])
    assert (waiting["status"], waiting["payment_id"], waiting.get("amount_refunded", 0)) == ("pending_payment", None, 0)
    assert stock(db, item) == 2 and events_of(db, "order.refunded", order_id=out["order_id"]) == []

    publish(db, PaymentSucceeded(payment_id=payment_id, order_id=out["order_id"], uid=member.uid,
                                 amount=out["total"], currency="usd"))
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", timeout=45, what="order refunded")
    done = order(db, out["order_id"])
    assert (done["payment_id"], done["amount_refunded"]) == (payment_id, out["total"])
    assert [h["status"] for h in done["history"]] == ["pending_payment", "paid", "refunded"]
    assert stock(db, item) == 4  # released once, by the refund
    assert harness.doc(db, f"order_holds/{member.uid}")["orders"] == 0
    assert harness.doc(db, f"deliveries/{refund}:orders_on_payment_refunded")["status"] == "processed"
    assert len(events_of(db, "order.paid", order_id=out["order_id"])) == 1  # as in order: paid, then refunded
    assert len(events_of(db, "order.refunded", order_id=out["order_id"])) == 1
    assert list(db.collection("dead_letters").stream()) == []


def test_a_partial_refund_delivered_before_its_success_is_recorded_once_the_order_is_paid(member, db):
    out = place(member, [(product(db), 2)])
    payment_id = "pay-" + out["order_id"]
    refund = publish(db, PaymentRefunded(payment_id=payment_id, order_id=out["order_id"], uid=member.uid,
                                         amount=500, currency="usd", amount_refunded=500, full=False))
    eventually(lambda: refund_waiting(db, refund), what="the refund waits for the success")
    assert order(db, out["order_id"]).get("amount_refunded", 0) == 0
    publish(db, PaymentSucceeded(payment_id=payment_id, order_id=out["order_id"], uid=member.uid,
                                 amount=out["total"], currency="usd"))
    eventually(lambda: order(db, out["order_id"]).get("amount_refunded") == 500, timeout=45, what="partial recorded")
    assert order(db, out["order_id"])["status"] == "paid"


def test_a_refund_of_a_payment_the_order_rejected_leaves_it_as_it_is(member, db):
    """A success for a cancelled order is rejected (payments refunds it): that refund has
    nothing to undo and does not wait for anything."""
    out = place(member, [(product(db), 1)])
    db.document(f"orders/{out['order_id']}").update({"status": "cancelled"})
    refund = publish(db, PaymentRefunded(payment_id="pay-" + out["order_id"], order_id=out["order_id"],
                                         uid=member.uid, amount=out["total"], currency="usd",
                                         reason="order_not_payable:order_cancelled"))
    eventually(lambda: (harness.doc(db, f"deliveries/{refund}:orders_on_payment_refunded") or {}).get("status")
               == "processed", what="the refund processed")
    assert order(db, out["order_id"])["status"] == "cancelled"


def test_dispute_updates_delivered_out_of_order_never_step_the_order_back(member, db):
    """payment.disputed reaches orders in any order: the newest (Stripe's `created`) stays."""
    out = paid(db, member)
    now = int(dt.datetime.now(dt.UTC).timestamp())

    def disputed(status: str, created: int) -> str:
        return publish(db, PaymentDisputed(payment_id="pay-" + out["order_id"], order_id=out["order_id"],
                                           uid=member.uid, dispute_id="dp_late", status=status, reason="fraudulent",
                                           amount=out["total"], currency="usd", closed=status == "won",
                                           created=created))

    def processed(event_id: str) -> bool:
        record = harness.doc(db, f"deliveries/{event_id}:orders_on_payment_disputed") or {}
        return record.get("status") == "processed"

    newer = disputed("under_review", now)
    eventually(lambda: processed(newer), what="the update applied")
    older = disputed("needs_response", now - 60)
    eventually(lambda: processed(older), what="the late created processed")
    stored = order(db, out["order_id"])
    assert (stored["dispute_id"], stored["dispute_status"], stored["dispute_closed"], stored["dispute_event_time"]) == (
        "dp_late", "under_review", False, now)
    won = disputed("won", now + 60)
    eventually(lambda: processed(won), what="the close applied")
    late = disputed("under_review", now + 30)
    eventually(lambda: processed(late), what="the late update processed")
    stored = order(db, out["order_id"])
    assert (stored["dispute_status"], stored["dispute_closed"], stored["dispute_event_time"]) == ("won", True, now + 60)


def test_staff_fulfil_paid_orders_only(member, staff, db):
    pending = place(member, [(product(db), 1)])
    with pytest.raises(CallableError) as err:
        call("orders_mark_fulfilled", {"order_id": pending["order_id"]}, user=staff)
    assert err.value.code == "failed-precondition"
    out = paid(db, member)
    with pytest.raises(CallableError) as err:
        call("orders_mark_fulfilled", {"order_id": out["order_id"]}, user=member)
    assert err.value.code == "permission-denied"
    assert call("orders_mark_fulfilled", {"order_id": out["order_id"]}, user=staff)["status"] == "fulfilled"
    for who in (member, staff):
        with pytest.raises(CallableError) as err:
            call("orders_cancel", {"order_id": out["order_id"]}, user=who)
        assert err.value.code == "failed-precondition"


def test_cancel_refusals(member, db):
    out = place(member, [(product(db), 1)])
    other = harness.sign_up()
    with pytest.raises(CallableError) as err:
        call("orders_cancel", {"order_id": out["order_id"]}, user=other)
    assert err.value.code == "permission-denied"
    with pytest.raises(CallableError) as err:
        call("orders_cancel", {"order_id": "missing-order"}, user=member)
    assert err.value.code == "not-found"
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="cancelled")
    with pytest.raises(CallableError) as err:
        call("orders_cancel", {"order_id": out["order_id"]}, user=member)
    assert err.value.code == "failed-precondition"


def test_an_event_about_a_missing_order_is_dead_lettered_at_once(member, db):
    event_id = publish(db, PaymentRefunded(payment_id="p", order_id="no-such-order", uid=member.uid, amount=1,
                                           currency="usd"))
    letter = eventually(lambda: harness.doc(db, f"dead_letters/{event_id}:orders_on_payment_refunded"), what="dead letter")
    assert "No order no-such-order" in letter["error"] and letter["attempts"] == 1


def test_unpaid_orders_expire_and_release_stock(admin, member, db):
    item = product(db, stock=3)
    old, fresh = place(member, [(item, 1)]), place(member, [(item, 1)])
    db.document(f"orders/{old['order_id']}").update({"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)})
    answer = call("orders_run_expiry", {}, user=admin)
    assert answer["cancelled"] == [old["order_id"]]
    assert order(db, old["order_id"])["status"] == "cancelling"  # its intent is closed first
    eventually(lambda: order(db, old["order_id"])["status"] == "cancelled", what="expired order cancelled")
    assert order(db, fresh["order_id"])["status"] == "pending_payment"
    assert stock(db, item) == 2
    assert events_of(db, "order.cancelled", order_id=old["order_id"])[0]["data"]["reason"] == "payment_timeout"


def test_deleting_the_account_keeps_orders_without_the_person(member, db):
    out = paid(db, member)
    pending = place(member, [(product(db, stock=2), 2)])
    call("identity_delete_account", {}, user=member)
    eventually(lambda: order(db, out["order_id"]).get("anonymised"), what="anonymised order")
    kept = order(db, out["order_id"])
    assert kept["uid"] == "deleted-user" and kept["user_ref"] is None and kept["status"] == "paid"
    assert member.uid not in repr(kept)
    eventually(lambda: order(db, pending["order_id"]).get("anonymised"), what="anonymised pending order")
    eventually(lambda: order(db, pending["order_id"])["status"] == "cancelled", what="pending order cancelled")
    closed = harness.doc(db, f"payments/pay_{pending['order_id']}")  # no intent: a closed payment recorded
    assert (closed["status"], closed["uid"], closed["user_ref"]) == ("canceled", "deleted-user", None)
    assert member.uid not in repr(closed)


def test_an_account_being_deleted_cannot_place_an_order(member, db):
    """orders_place reads the profile in the order's transaction: once identity has marked it
    `deleting` (in the transaction that publishes identity.user_deleted; here set as that
    transaction leaves it, while the Auth account still exists, i.e. mid-deletion), the order
    is refused as payments refuses an intent, and nothing is written."""
    item = product(db, stock=5)
    db.document(f"users/{member.uid}").update({"status": "deleting"})
    with pytest.raises(CallableError) as err:
        place(member, [(item, 2)])
    assert (err.value.code, err.value.details["reason"]) == ("permission-denied", "account_deleted")
    assert list(db.collection("orders").stream()) == []
    assert list(db.collection("topics/order.placed/events").stream()) == []
    assert harness.doc(db, f"order_holds/{member.uid}") is None and stock(db, item) == 5


def test_a_live_account_without_a_profile_still_places_orders(db):
    """A missing profile alone is not a deleted account (the app's own sign-up, the console):
    only with its identity.user_deleted published is it refused (as payments judges it)."""
    user = harness.create_account_without_blocking_functions(f"no-profile-{uuid.uuid4().hex[:8]}@example.com")
    assert harness.doc(db, f"users/{user.uid}") is None
    assert place(user, [(product(db), 1)])["status"] == "pending_payment"


# ---- no stock hoarding (issue 16) ---------------------------------------------------
# The defaults: ORDER_MAX_UNPAID_ORDERS=3, ORDER_MAX_UNPAID_UNITS=50 (functions/.env.local sets neither).

def hold(db, uid: str) -> dict:
    return harness.doc(db, f"order_holds/{uid}") or {}


def test_a_user_holds_at_most_three_unpaid_orders_and_cancelling_ones_count(member, db):
    item = product(db, stock=20)
    # Keep a cancelled order in `cancelling` (its PaymentIntent not yet closed) as long as the test needs.
    db.document("_faults/payments_on_order_cancel_requested").set({"always": True})
    first, second, _ = (place(member, [(item, 1)]) for _ in range(3))
    assert hold(db, member.uid)["orders"] == 3 and hold(db, member.uid)["units"] == 3
    with pytest.raises(CallableError) as err:
        place(member, [(item, 1)])
    assert err.value.code == "resource-exhausted" and err.value.http_status == 429
    assert (err.value.details["reason"], err.value.details["limit"], err.value.details["held"]) == (
        "too_many_unpaid_orders", 3, 3)
    assert stock(db, item) == 17 and len(list(db.collection("orders").stream())) == 3

    assert call("orders_cancel", {"order_id": first["order_id"]}, user=member)["status"] == "cancelling"
    with pytest.raises(CallableError) as err:
        place(member, [(item, 1)])
    assert err.value.code == "resource-exhausted"  # a cancelling order still holds its stock
    assert order(db, first["order_id"])["status"] == "cancelling"

    publish(db, PaymentCanceled(payment_id="pay_" + first["order_id"], order_id=first["order_id"], uid=member.uid))
    eventually(lambda: order(db, first["order_id"])["status"] == "cancelled", what="cancelled")
    assert hold(db, member.uid)["orders"] == 2
    fourth = place(member, [(item, 1)])
    assert fourth["status"] == "pending_payment"

    publish(db, PaymentSucceeded(payment_id="pay-" + second["order_id"], order_id=second["order_id"], uid=member.uid,
                                 amount=second["total"], currency="usd"))
    eventually(lambda: order(db, second["order_id"])["status"] == "paid", what="paid")
    assert (hold(db, member.uid)["orders"], hold(db, member.uid)["units"]) == (2, 2)
    assert place(member, [(item, 1)])["status"] == "pending_payment"  # a paid order holds no slot
    assert stock(db, item) == 16  # 5 placed, 1 cancelled
    other = harness.sign_up()
    assert place(other, [(item, 1)])["status"] == "pending_payment"  # limits are per user


def test_unpaid_orders_hold_at_most_fifty_units(member, db):
    item = product(db, stock=200)
    with pytest.raises(CallableError) as err:
        place(member, [(item, 51)])
    assert err.value.code == "resource-exhausted"
    assert err.value.details["reason"] == "too_many_unpaid_units" and err.value.details["limit"] == 50
    assert stock(db, item) == 200 and list(db.collection("orders").stream()) == []
    place(member, [(item, 30)])
    with pytest.raises(CallableError) as err:
        place(member, [(item, 21)])
    assert (err.value.details["held"], err.value.details["requested"]) == (30, 21)
    assert place(member, [(item, 20)])["total"] == 20 * 1250
    assert stock(db, item) == 150


def test_a_repeat_of_a_placed_order_is_answered_even_at_the_limit(member, db):
    item = product(db, stock=10)
    key = uuid.uuid4().hex
    first = place(member, [(item, 1)], key)
    place(member, [(item, 1)])
    place(member, [(item, 1)])
    assert place(member, [(item, 1)], key) == first  # a retry is not a fourth order
    assert hold(db, member.uid)["orders"] == 3 and stock(db, item) == 7


def test_concurrent_orders_cannot_exceed_the_limit(member, db):
    items = [product(db, stock=10) for _ in range(5)]

    def attempt(i: int):
        try:
            return harness.call_retrying("orders_place", {"items": [{"product_id": items[i], "quantity": 1}],
                                                          "idempotency_key": uuid.uuid4().hex}, member, attempts=8)
        except CallableError as err:
            return err

    with cf.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(attempt, range(5)))
    placed = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, CallableError)]
    assert len(placed) == 3, results
    assert {r.code for r in refused} == {"resource-exhausted"}
    assert len(list(db.collection("orders").stream())) == 3 and hold(db, member.uid)["orders"] == 3
    assert sum(stock(db, i) for i in items) == 5 * 10 - 3


def test_the_hold_counter_is_erased_with_the_account(member, db):
    place(member, [(product(db), 2)])
    assert hold(db, member.uid)["units"] == 2
    call("identity_delete_account", {}, user=member)
    eventually(lambda: harness.doc(db, f"order_holds/{member.uid}") is None, what="hold counter erased")


# ---- rules -----------------------------------------------------------------------

def test_rules_products(member, staff, db):
    active, archived = product(db), product(db, active=False)
    assert AppClient(member).get(f"products/{active}")["price"] == 1250
    with pytest.raises(Denied):
        AppClient(member).get(f"products/{archived}")
    with pytest.raises(Denied):
        AppClient(None).get(f"products/{active}")
    assert len(AppClient(member).query("products", where=[("active", "==", True)])) == 1
    with pytest.raises(Denied):
        AppClient(member).query("products")  # could return archived products
    assert len(AppClient(staff).query("products")) == 2
    for who in (member, staff):
        with pytest.raises(Denied):
            AppClient(who).update(f"products/{active}", {"price": 1})
        with pytest.raises(Denied):
            AppClient(who).create("products", "new", {"name": "x", "price": 1, "active": True})
        with pytest.raises(Denied):
            AppClient(who).delete(f"products/{active}")


def test_rules_orders(member, staff, db):
    mine = place(member, [(product(db), 1)])["order_id"]
    other = harness.sign_up()
    theirs = place(other, [(product(db), 1)])["order_id"]
    app = AppClient(member)
    assert app.get(f"orders/{mine}")["total"] == 1250
    with pytest.raises(Denied):
        app.get(f"orders/{theirs}")
    by_ref = app.query("orders", where=[("user_ref", "==", Ref.to(f"users/{member.uid}"))])
    by_uid = app.query("orders", where=[("uid", "==", member.uid)])
    assert [o["order_id"] for o in by_ref] == [o["order_id"] for o in by_uid] == [mine]
    with pytest.raises(Denied):
        app.query("orders")
    assert len(AppClient(staff).query("orders")) == 2
    for attempt in (lambda: app.update(f"orders/{mine}", {"status": "paid"}),
                    lambda: app.create("orders", "forged", {"uid": member.uid, "total": 0}),
                    lambda: app.delete(f"orders/{mine}")):
        with pytest.raises(Denied):
            attempt()
    with pytest.raises(Denied):
        AppClient(None).get(f"orders/{mine}")


def test_a_reused_key_with_another_order_is_refused_and_writes_nothing(member, db):
    item, other = product(db, stock=10), product(db, stock=10)
    key = uuid.uuid4().hex
    first = place(member, [(item, 1)], key)
    with pytest.raises(CallableError) as err:
        place(member, [(other, 2)], key)
    assert err.value.code == "invalid-argument" and err.value.fields == ["idempotency_key"]
    assert (stock(db, item), stock(db, other)) == (9, 10)
    assert [o.id for o in db.collection("orders").stream()] == [first["order_id"]]


def test_concurrent_repeats_of_one_order_key_place_one_order(member, db):
    """A double-tapping user's repeats meet on one order and one hold document; Firestore
    aborts some of their transactions for contention, and orders_place places them again
    itself: every tap answers the one order, none `aborted` (only a dropped connection is
    retried here, as the emulator's proxy drops some under load)."""
    item = product(db, stock=10)
    key = uuid.uuid4().hex
    with cf.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: harness.call_retrying(
            "orders_place", {"items": [{"product_id": item, "quantity": 2}], "idempotency_key": key}, member,
            aborted=False), range(6)))
    assert len({a["order_id"] for a in answers}) == 1
    assert stock(db, item) == 8 and len(list(db.collection("orders").stream())) == 1
