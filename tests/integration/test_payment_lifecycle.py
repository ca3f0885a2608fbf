"""Stripe's documented PaymentIntent lifecycle, sequence by sequence, on the emulators.

Every Stripe call goes through the real `stripe` SDK to the Stripe stand-in
(localstripe made faithful by devtools/stripe_standin.py), which sends its own
signed webhooks. The invariant under test: no customer is charged without a
paid order or a refund.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
import requests
import stripe

from testkit import harness
from testkit.harness import CallableError, call, eventually
from testkit.payments import confirm, post_webhook, sign, stripe_client
from testkit.shop import events_of, order, place, product, publish, stock
from testkit.shop import start_payment as checkout

DECLINED = "4000000000000341"  # declined when charged
DISPUTED = "4000000000000259"  # succeeds, then the customer's bank disputes it
REFUND_FAILS = "4000000000005126"  # succeeds; a refund of it starts succeeded, then fails at Stripe


def start_payment(db, member, item=None, qty: int = 1) -> tuple[dict, dict, str]:
    return checkout(db, member, item or product(db), qty)


def payment(db, payment_id: str) -> dict:
    return harness.doc(db, f"payments/{payment_id}")


def stripe_intent(pi: str):
    return stripe_client().v1.payment_intents.retrieve(pi)


def charged(pi: str) -> int:
    """What Stripe holds of the customer's money for an intent: received minus refunded."""
    intent = stripe_intent(pi)
    if intent.status != "succeeded":
        return 0
    return intent.amount_received - stripe_client().v1.charges.retrieve(intent.latest_charge).amount_refunded


def standin(path: str, **fields) -> None:
    r = requests.post(f"{harness.need('FLOWSUITE_STRIPE_URL')}/_config/{path}", data=fields, timeout=10)
    assert r.status_code < 300, r.text


@pytest.fixture(autouse=True)
def webhooks_flow_again():
    """A test that drops the stand-in's webhooks lets them flow again, pass or fail."""
    yield
    standin("webhooks/drop", count=0)


def settled(db) -> None:
    """Every event of the test delivered and processed: a trigger that has not started yet
    would otherwise run in the next test's world (seen with payment.canceled)."""
    harness.every_delivery_processed(db)


def test_a_decline_then_another_card_on_the_same_intent_pays_the_order(member, db):
    item = product(db, stock=2)
    out, intent, pi = start_payment(db, member, item, 2)
    declined = confirm(pi, DECLINED)
    assert getattr(declined, "code", None) == "card_declined"  # the SDK raised CardError, as Stripe answers 402
    eventually(lambda: payment(db, intent["payment_id"]).get("failed_attempts") == 1, what="attempt recorded")
    failed = payment(db, intent["payment_id"])
    assert failed["status"] == "requires_payment" and failed["failure_reason"] and failed["last_failure_time"]
    told = eventually(lambda: events_of(db, "payment.failed", order_id=out["order_id"]), what="payment.failed")
    eventually(lambda: harness.doc(db, f"users/{member.uid}/notifications/{told[0]['id']}"), what="the customer is told")
    settled(db)
    assert order(db, out["order_id"])["status"] == "pending_payment" and stock(db, item) == 0
    assert stripe_intent(pi).status == "requires_payment_method"
    again = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex},
                 user=member)
    assert again["client_secret"] == intent["client_secret"]  # the PaymentSheet retries the same intent
    assert confirm(pi).status == "succeeded"
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    assert payment(db, intent["payment_id"])["status"] == "succeeded" and stock(db, item) == 0
    assert charged(pi) == out["total"]


def test_a_decline_then_cancel_closes_the_intent_and_releases_stock_once(member, db):
    item = product(db, stock=3)
    out, intent, pi = start_payment(db, member, item, 2)
    confirm(pi, DECLINED)
    eventually(lambda: payment(db, intent["payment_id"]).get("failed_attempts") == 1, what="attempt recorded")
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"
    assert stock(db, item) == 1  # held until Stripe has closed the intent
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"  # double tap
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="order cancelled")
    assert stripe_intent(pi).status == "canceled"
    assert payment(db, intent["payment_id"])["status"] == "canceled"
    settled(db)
    assert stock(db, item) == 3
    assert len(events_of(db, "order.cancelled", order_id=out["order_id"])) == 1
    assert len(events_of(db, "order.cancel_requested", order_id=out["order_id"])) == 1
    with pytest.raises(stripe.StripeError):  # the customer's sheet was still open: Stripe refuses
        confirm(pi)
    assert charged(pi) == 0
    with pytest.raises(CallableError) as err:
        call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex},
             user=member)
    assert err.value.code == "failed-precondition"


def test_cancelling_an_order_stripe_has_already_charged_makes_it_paid(member, db):
    item = product(db, stock=1)
    out, intent, pi = start_payment(db, member, item)
    standin("webhooks/drop", count=10)  # the success webhook is late: Stripe charged, we do not know yet
    assert confirm(pi).status == "succeeded"
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="the order follows the payment")
    assert payment(db, intent["payment_id"])["status"] == "succeeded" and stock(db, item) == 0
    assert charged(pi) == out["total"]


def test_cancelling_while_the_payment_is_processing_waits_for_stripe_to_settle_it(member, db):
    """A bank debit is `processing` for days and Stripe will not cancel it: the order stays
    `cancelling` (stock held) and the cancel is retried; once the debit fails, the intent is
    closed and the order cancelled."""
    item = product(db, stock=1)
    out, intent, pi = start_payment(db, member, item)
    pm = stripe_client().v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    stripe_client().v1.payment_intents.update(pi, params={"payment_method": pm.id})
    standin(f"payment_intents/{pi}/processing")
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "processing", what="processing")
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelling"
    eventually(lambda: [d for d in (s.to_dict() for s in db.collection("deliveries").stream())
                        if d.get("subscriber") == "payments_on_order_cancel_requested" and d.get("status") == "failed"
                        and "processing" in (d.get("last_error") or "")],
               what="Stripe refused to cancel a processing intent")
    assert order(db, out["order_id"])["status"] == "cancelling" and stock(db, item) == 0
    standin(f"payment_intents/{pi}/settle", outcome="failed")
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", timeout=60, what="order cancelled")
    assert stripe_intent(pi).status == "canceled" and stock(db, item) == 1 and charged(pi) == 0


def test_a_success_for_an_order_that_can_no_longer_be_paid_is_refunded(member, db):
    """An order that can no longer be paid (here an operator cancelled it in the console while
    the customer's sheet was open) receives a real Stripe success: the money goes back."""
    item = product(db, stock=2)
    out, intent, pi = start_payment(db, member, item)
    db.document(f"orders/{out['order_id']}").update({"status": "cancelled", "cancel_reason": "cancelled_by_operator"})
    assert confirm(pi).status == "succeeded"
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "refunded", timeout=45, what="refunded")
    refunded = payment(db, intent["payment_id"])
    assert refunded["refund_reason"].startswith("order_not_payable") and refunded["amount_refunded"] == out["total"]
    assert order(db, out["order_id"])["status"] == "cancelled"
    assert charged(pi) == 0
    note = eventually(lambda: [n.to_dict() for n in db.collection(f"users/{member.uid}/notifications").stream()
                               if n.get("type") == "payment_refunded"], what="the customer is told why")
    assert "arrived after the order had been cancelled" in note[0]["body"]
    settled(db)
    assert list(db.collection("dead_letters").stream()) == []


def test_an_account_deleted_mid_payment_is_refunded_not_charged(member, db):
    item = product(db, stock=1)
    out, intent, pi = start_payment(db, member, item)
    standin("webhooks/drop", count=10)
    assert confirm(pi).status == "succeeded"
    call("identity_delete_account", {}, user=member)
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "refunded", timeout=45, what="refunded")
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="order cancelled")
    settled(db)
    assert charged(pi) == 0 and stock(db, item) == 1


def test_an_intent_cancelled_in_the_stripe_dashboard_cancels_the_order_and_releases_stock(member, db):
    item = product(db, stock=2)
    out, intent, pi = start_payment(db, member, item, 2)
    stripe_client().v1.payment_intents.cancel(pi, params={"cancellation_reason": "fraudulent"})  # an operator
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="order cancelled")
    assert payment(db, intent["payment_id"])["status"] == "canceled" and stock(db, item) == 2
    settled(db)
    assert len(events_of(db, "order.cancelled", order_id=out["order_id"])) == 1 and charged(pi) == 0


def test_expiry_closes_the_intent_before_releasing_stock(admin, member, db):
    item = product(db, stock=2)
    out, intent, pi = start_payment(db, member, item)
    db.document(f"orders/{out['order_id']}").update({"expires_at": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)})
    assert call("orders_run_expiry", {}, user=admin)["cancelled"] == [out["order_id"]]
    eventually(lambda: order(db, out["order_id"])["status"] == "cancelled", what="order cancelled")
    assert stripe_intent(pi).status == "canceled" and stripe_intent(pi).cancellation_reason == "abandoned"
    assert stock(db, item) == 2
    assert events_of(db, "order.cancelled", order_id=out["order_id"])[0]["data"]["reason"] == "payment_timeout"


def paid_order(db, member, card: str = "4242424242424242", item=None) -> tuple[dict, dict, str]:
    out, intent, pi = start_payment(db, member, item or product(db, price=2000, stock=5))
    assert confirm(pi, card).status == "succeeded"
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    return out, intent, pi


def test_a_partial_dashboard_refund_is_recorded_as_partial(member, db):
    out, intent, pi = paid_order(db, member)
    stripe_client().v1.refunds.create(params={"payment_intent": pi, "amount": 500})  # an operator in the Dashboard
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "partially_refunded", what="partial")
    assert payment(db, intent["payment_id"])["amount_refunded"] == 500
    eventually(lambda: order(db, out["order_id"]).get("amount_refunded") == 500, what="order shows it")
    assert order(db, out["order_id"])["status"] == "paid"
    stripe_client().v1.refunds.create(params={"payment_intent": pi})  # the rest
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", what="order refunded")
    assert payment(db, intent["payment_id"])["amount_refunded"] == 2000
    assert [e["data"]["full"] for e in sorted(events_of(db, "payment.refunded", order_id=out["order_id"]),
                                              key=lambda e: e["time"])] == [False, True]


def test_a_full_dashboard_refund_refunds_the_order_and_returns_its_stock(member, db):
    item = product(db, price=2000, stock=5)
    out, intent, pi = paid_order(db, member, item=item)
    assert stock(db, item) == 4
    stripe_client().v1.refunds.create(params={"payment_intent": pi})
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", what="order refunded")
    assert payment(db, intent["payment_id"])["status"] == "refunded" and stock(db, item) == 5
    settled(db)
    assert len(events_of(db, "payment.refunded", order_id=out["order_id"])) == 1


def test_a_dispute_opened_and_closed_marks_payment_and_order_and_tells_admins(admin, member, db):
    out, intent, pi = paid_order(db, member, card=DISPUTED)
    eventually(lambda: payment(db, intent["payment_id"]).get("dispute_status") == "needs_response", what="disputed")
    eventually(lambda: order(db, out["order_id"]).get("dispute_status") == "needs_response", what="order disputed")
    dispute_id = payment(db, intent["payment_id"])["dispute_id"]
    alerts = eventually(lambda: [n.to_dict() for n in db.collection(f"users/{admin.uid}/notifications").stream()
                                 if n.get("type") == "dispute_update"], what="admin alerted")
    assert out["order_id"] in alerts[0]["title"]
    stripe_client().v1.disputes.update(dispute_id, params={"evidence": {"uncategorized_text": "winning_evidence"}})
    eventually(lambda: order(db, out["order_id"]).get("dispute_status") == "won", what="dispute won")
    assert order(db, out["order_id"])["dispute_closed"] is True and order(db, out["order_id"])["status"] == "paid"
    assert payment(db, intent["payment_id"])["dispute_status"] == "won"
    mine = [n.get("type") for n in db.collection(f"users/{member.uid}/notifications").stream()]
    assert "dispute_update" not in mine and "order_paid" in mine  # admins are told, not the customer


def test_a_paid_order_under_an_open_dispute_cannot_be_cancelled_until_the_dispute_is_won(staff, member, db):
    """Stripe refuses to refund a disputed charge: while the dispute is open, neither the
    customer nor staff may cancel the order (nothing changes); once it is won, cancelling
    refunds it."""
    item = product(db, price=2000, stock=5)
    out, intent, pi = paid_order(db, member, card=DISPUTED, item=item)
    eventually(lambda: order(db, out["order_id"]).get("dispute_status") == "needs_response", what="order disputed")
    before = order(db, out["order_id"])
    for who in (member, staff):
        with pytest.raises(CallableError) as err:
            call("orders_cancel", {"order_id": out["order_id"]}, user=who)
        assert err.value.code == "failed-precondition"
        assert (err.value.details["reason"], err.value.details["dispute_id"], err.value.details["dispute_status"]) == (
            "dispute_open", before["dispute_id"], "needs_response")
        assert before["dispute_id"] in err.value.message
    after = order(db, out["order_id"])
    assert (after["status"], after["history"], after["cancel_reason"]) == ("paid", before["history"], None)
    assert stock(db, item) == 4 and events_of(db, "order.cancelled", order_id=out["order_id"]) == []
    assert payment(db, intent["payment_id"])["status"] == "succeeded" and charged(pi) == 2000

    stripe_client().v1.disputes.update(before["dispute_id"],
                                       params={"evidence": {"uncategorized_text": "winning_evidence"}})
    eventually(lambda: order(db, out["order_id"]).get("dispute_closed") is True, what="dispute won")
    assert call("orders_cancel", {"order_id": out["order_id"]}, user=member)["status"] == "cancelled"
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", timeout=45, what="order refunded")
    assert payment(db, intent["payment_id"])["status"] == "refunded" and charged(pi) == 0 and stock(db, item) == 5


def test_a_refund_stripe_refuses_for_a_disputed_charge_is_flagged_not_retried(member, db):
    """The order was cancelled just before its dispute reached orders (here: its order.cancelled
    published directly): Stripe refuses the refund (charge_disputed). The payment is flagged for
    staff and the delivery is a dead letter at its first attempt, not retried blindly."""
    from flowsuite.orders.events import OrderCancelled

    out, intent, pi = paid_order(db, member, card=DISPUTED)
    eventually(lambda: payment(db, intent["payment_id"]).get("dispute_status") == "needs_response", what="disputed")
    cancelled = publish(db, OrderCancelled(order_id=out["order_id"], uid=member.uid, reason="cancelled_by_customer",
                                           was_paid=True, payment_id=intent["payment_id"], total=out["total"],
                                           currency=out["currency"]))
    letter = eventually(lambda: harness.doc(db, f"dead_letters/{cancelled}:payments_on_order_cancelled"),
                        what="the refused refund is a dead letter")
    assert letter["attempts"] == 1 and letter["dead_reason"] == "permanent" and "charge_disputed" in letter["error"]
    refused = payment(db, intent["payment_id"])
    assert (refused["status"], refused["refund_refused"], refused["amount_refunded"]) == (
        "succeeded", "charge_disputed", 0)
    assert refused["refund_refused_time"] is not None
    assert charged(pi) == out["total"] and events_of(db, "payment.refunded", order_id=out["order_id"]) == []


def signed(kind: str, obj: dict, created: int, event_id: str | None = None) -> tuple[str, str]:
    payload = json.dumps({"id": event_id or f"evt_{uuid.uuid4().hex[:16]}", "object": "event", "type": kind,
                          "created": created, "data": {"object": obj}})
    return payload, sign(payload)


def test_events_out_of_order_never_overwrite_a_newer_state(member, db):
    out, intent, pi = start_payment(db, member)
    obj = json.loads(str(stripe_intent(pi)))
    now = int(time.time())
    succeeded = {**obj, "status": "succeeded", "amount_received": obj["amount"]}
    assert post_webhook(*signed("payment_intent.succeeded", succeeded, now)).json()["outcome"] == "succeeded"
    older = [("payment_intent.processing", {**obj, "status": "processing"}),
             ("payment_intent.requires_action", {**obj, "status": "requires_action"}),
             ("payment_intent.payment_failed", {**obj, "status": "requires_payment_method",
                                                "last_payment_error": {"code": "card_declined"}})]
    for kind, body in older:
        r = post_webhook(*signed(kind, body, now - 30))
        assert r.status_code == 200 and r.json()["outcome"].startswith("stale"), (kind, r.text)
    assert payment(db, intent["payment_id"])["status"] == "succeeded"
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")

    fresh_out, fresh_intent, fresh_pi = start_payment(db, member)
    fresh = json.loads(str(stripe_intent(fresh_pi)))
    assert post_webhook(*signed("payment_intent.processing", {**fresh, "status": "processing"}, now)).json()[
        "outcome"] == "processing"
    failed_before = {**fresh, "status": "requires_payment_method", "last_payment_error": {"code": "card_declined"}}
    post_webhook(*signed("payment_intent.payment_failed", failed_before, now - 60))
    assert payment(db, fresh_intent["payment_id"])["status"] == "processing"  # the older failure did not win
    refund_first = {"id": "ch_x", "object": "charge", "payment_intent": fresh_pi, "amount": fresh["amount"],
                    "amount_refunded": fresh["amount"], "refunded": True, "metadata": fresh["metadata"]}
    assert post_webhook(*signed("charge.refunded", refund_first, now)).status_code == 503  # before its success


def test_a_refund_of_a_closed_payment_waits_for_its_success(member, db):
    """payment.succeeded always comes before payment.refunded (orders relies on it): a refund
    of a payment we hold as canceled (only its success, still to come, can explain a charge)
    is not applied before that success; Stripe retries it (503)."""
    out, intent, pi = start_payment(db, member)
    stripe_client().v1.payment_intents.cancel(pi, params={"cancellation_reason": "abandoned"})
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "canceled", what="payment canceled")
    obj = json.loads(str(stripe_intent(pi)))
    charge = {"id": "ch_closed", "object": "charge", "payment_intent": pi, "amount": obj["amount"],
              "amount_refunded": obj["amount"], "refunded": True, "metadata": obj["metadata"]}
    assert post_webhook(*signed("charge.refunded", charge, int(time.time()))).status_code == 503
    closed = payment(db, intent["payment_id"])
    assert (closed["status"], closed["amount_refunded"]) == ("canceled", 0)
    assert events_of(db, "payment.refunded", order_id=out["order_id"]) == []
    settled(db)  # the cancellation's own deliveries end here, not in the next test's world


def test_dispute_events_out_of_order_never_step_the_status_back(admin, member, db):
    """Stripe sends a dispute's events out of order: a late charge.dispute.created
    (needs_response) after charge.dispute.updated (under_review) changes nothing and alerts
    no admin: payment.disputed is published once per step applied, never for needs_response."""
    out, intent, pi = paid_order(db, member)
    now = int(time.time())
    dispute = {"id": f"dp_{uuid.uuid4().hex[:14]}", "object": "dispute", "charge": "ch_disputed",
               "payment_intent": pi, "reason": "fraudulent", "amount": 2000, "currency": "usd"}
    r = post_webhook(*signed("charge.dispute.updated", {**dispute, "status": "under_review"}, now))
    assert (r.status_code, r.json()["outcome"]) == (200, "dispute_under_review"), r.text
    r = post_webhook(*signed("charge.dispute.created", {**dispute, "status": "needs_response"}, now - 60))
    assert (r.status_code, r.json()["outcome"]) == (200, "stale_dispute"), r.text
    stored = payment(db, intent["payment_id"])
    assert (stored["dispute_id"], stored["dispute_status"], stored["dispute_event_time"]) == (
        dispute["id"], "under_review", now)
    eventually(lambda: order(db, out["order_id"]).get("dispute_status") == "under_review", what="order disputed")
    published = events_of(db, "payment.disputed", order_id=out["order_id"])
    assert [(e["data"]["status"], e["data"]["created"]) for e in published] == [("under_review", now)]

    r = post_webhook(*signed("charge.dispute.closed", {**dispute, "status": "won"}, now + 60))
    assert (r.status_code, r.json()["outcome"]) == (200, "dispute_won"), r.text
    r = post_webhook(*signed("charge.dispute.updated", {**dispute, "status": "under_review"}, now + 30))
    assert (r.status_code, r.json()["outcome"]) == (200, "stale_dispute"), r.text
    eventually(lambda: order(db, out["order_id"]).get("dispute_status") == "won", what="dispute won")
    assert order(db, out["order_id"])["dispute_closed"] is True and order(db, out["order_id"])["status"] == "paid"
    assert order(db, out["order_id"])["dispute_event_time"] == now + 60
    assert sorted(e["data"]["status"] for e in events_of(db, "payment.disputed", order_id=out["order_id"])) == [
        "under_review", "won"]
    settled(db)
    titles = [n.get("title") for n in db.collection(f"users/{admin.uid}/notifications").stream()
              if n.get("type") == "dispute_update"]
    assert len(titles) == 2 and not any("needs response" in t for t in titles), titles


def test_events_that_are_not_ours_answer_200_and_ours_not_yet_recorded_503(member, db):
    cases = {
        "no metadata": {"id": "pi_other_app", "object": "payment_intent", "metadata": {}},
        "another app": {"id": "pi_other_app2", "object": "payment_intent", "metadata": {"app": "other"}},
        "another project": {"id": "pi_staging", "object": "payment_intent",
                            "metadata": {"flowsuite_payment_id": "pay_x", "flowsuite_project": "demo-staging"}},
        "a charge of another app": {"id": "ch_other", "object": "charge", "payment_intent": "pi_nope",
                                    "amount_refunded": 100, "metadata": {}},
        "a dispute of another app": {"id": "dp_other", "object": "dispute", "charge": "ch_nope",
                                     "payment_intent": "pi_nope", "status": "needs_response", "amount": 100},
        # refunds of another deployment sharing the Stripe account: its project named, or (made
        # before refunds carried it) a payment id this project never recorded
        "a refund of another project": {"id": "re_staging", "object": "refund", "charge": "ch_nope",
                                        "payment_intent": "pi_nope", "status": "failed", "amount": 100,
                                        "metadata": {"flowsuite_payment_id": "pay_staging",
                                                     "flowsuite_project": "demo-staging"}},
        "an older refund of another deployment": {"id": "re_old", "object": "refund", "charge": "ch_nope",
                                                  "payment_intent": "pi_nope", "status": "failed", "amount": 100,
                                                  "metadata": {"flowsuite_payment_id": "pay_elsewhere"}},
    }
    kinds = {"a charge of another app": "charge.refunded", "a dispute of another app": "charge.dispute.created",
             "a refund of another project": "charge.refund.updated",
             "an older refund of another deployment": "charge.refund.updated"}
    for name, obj in cases.items():
        r = post_webhook(*signed(kinds.get(name, "payment_intent.succeeded"), obj, int(time.time())))
        assert (r.status_code, r.json().get("outcome")) == (200, "not_ours"), name
    ours = {"id": "pi_unrecorded", "object": "payment_intent",
            "metadata": {"flowsuite_payment_id": "pay_unrecorded", "flowsuite_project": "demo-flowsuite"}}
    assert post_webhook(*signed("payment_intent.succeeded", ours, int(time.time()))).status_code == 503
    assert list(db.collection("payments").stream()) == []


def dropped(kind: str) -> int:
    """Webhooks of this type the stand-in dropped so far (its delivery log)."""
    r = requests.get(f"{harness.need('FLOWSUITE_STRIPE_URL')}/_config/webhooks/attempts", params={"type": kind},
                     timeout=10)
    return sum(1 for attempt in r.json()["data"] if attempt["status"] == "dropped")


def test_a_dropped_webhook_is_repaired_by_reconciliation(admin, member, db):
    out, intent, pi = start_payment(db, member)
    before = dropped("payment_intent.succeeded")
    standin("webhooks/drop", count=10)  # Stripe gave up on this endpoint: the success never arrives
    assert confirm(pi).status == "succeeded"
    eventually(lambda: dropped("payment_intent.succeeded") > before, what="the success webhook dropped")
    assert payment(db, intent["payment_id"])["status"] == "requires_payment"  # dropped, not merely late
    answer = call("payments_run_reconciliation", {"minutes": 5}, user=admin)
    assert answer["applied"] == 1 and answer["errors"] == 0 and answer["checked"] >= 1
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    again = call("payments_run_reconciliation", {"minutes": 5}, user=admin)
    assert again["applied"] == 0 and again["unchanged"] >= 1
    with pytest.raises(CallableError) as err:
        call("payments_run_reconciliation", {"minutes": 5}, user=member)
    assert err.value.code == "permission-denied"


@pytest.mark.parametrize(("price", "currency", "qty"), [(49, "usd", 1), (29, "gbp", 1), (100_000_000, "usd", 1),
                                                        (2_000_001, "usd", 50)])
def test_totals_stripe_cannot_charge_are_refused_and_hold_nothing(member, db, price, currency, qty):
    item = product(db, price=price, currency=currency, stock=100)
    with pytest.raises(CallableError) as err:
        place(member, [(item, qty)])
    assert err.value.code == "invalid-argument" and err.value.fields == ["items"]
    assert stock(db, item) == 100 and list(db.collection("orders").stream()) == []


def test_the_payment_sheet_gets_customer_and_ephemeral_key(member, db):
    out, intent, pi = start_payment(db, member)
    assert intent["customer"].startswith("cus_") and intent["ephemeral_key"].startswith("ek_")
    assert stripe_intent(pi).customer == intent["customer"]


def refund_of(pi: str):
    """The intent's one refund at Stripe."""
    refunds = stripe_client().v1.refunds.list(params={"payment_intent": pi}).data
    assert len(refunds) == 1, [r.id for r in refunds]
    return refunds[0]


def stripe_event(kind: str, object_id: str) -> dict:
    """The event Stripe (the stand-in) sent about an object, as it was sent."""
    events = stripe_client().v1.events.list(params={"type": kind, "limit": 100}).data
    found = [json.loads(str(e)) for e in events if e.data.object.id == object_id]
    assert len(found) == 1, (kind, object_id, len(found))
    return found[0]


def alerts_of(db, uid: str, kind: str) -> list[dict]:
    return [n.to_dict() for n in db.collection(f"users/{uid}/notifications").stream() if n.get("type") == kind]


def test_a_refund_that_fails_at_stripe_is_undone_flagged_and_alerted(admin, member, db):
    """Stripe's "Refund failures": the refund of a cancelled paid order starts succeeded, then
    fails (test card 4000000000005126) and Stripe gives the money back to the merchant. The
    payment's refunded amount returns to Stripe's (0), payment and order are flagged, every admin
    is alerted once, and late, repeated or older events change nothing more."""
    item = product(db, price=2000, stock=5)
    out, intent, pi = paid_order(db, member, card=REFUND_FAILS, item=item)
    pid, oid = intent["payment_id"], out["order_id"]
    assert call("orders_cancel", {"order_id": oid}, user=member)["status"] == "cancelled"
    eventually(lambda: payment(db, pid).get("refund_failures") == 1, timeout=45, what="the refund failure recorded")
    refund = refund_of(pi)
    assert (refund.status, refund.failure_reason) == ("failed", "expired_or_canceled_card")
    failed = payment(db, pid)
    assert (failed["amount_refunded"], failed["status"]) == (0, "succeeded")
    assert failed["refund_statuses"] == {refund.id: "failed"}
    assert (failed["needs_review"], failed["review_reason"]) == (True, "refund_failed")
    assert failed["refund_failure_reason"] == "expired_or_canceled_card" and failed["refund_failed_time"]
    flagged = eventually(lambda: order(db, oid).get("needs_review") and order(db, oid), what="the order flagged")
    assert (flagged["review_reason"], flagged["refund_failure_reason"]) == ("refund_failed", "expired_or_canceled_card")
    alerts = eventually(lambda: alerts_of(db, admin.uid, "refund_failed"), what="the admins alerted")
    assert oid in alerts[0]["title"] and refund.id in alerts[0]["body"]
    assert "Refunded of the payment now: 0.00 USD" in alerts[0]["body"]
    settled(db)
    flagged = order(db, oid)
    assert (flagged["status"], flagged["amount_refunded"], flagged["needs_review"]) == ("refunded", 0, True)
    assert stock(db, item) == 5  # the cancellation released it; a failed refund does not take it back
    assert charged(pi) == out["total"] == 2000  # what Stripe holds: the customer still paid, as the payment says
    assert [e["data"]["refund_id"] for e in events_of(db, "payment.refund_failed", order_id=oid)] == [refund.id]
    assert "refund_failed" not in [n.get("type") for n in db.collection(f"users/{member.uid}/notifications").stream()]

    # Stripe sent charge.refund.updated, refund.updated and refund.failed at once (the suite's
    # endpoint takes every event): the first applied, the others found the status recorded.
    # Each delivered again, then an older status and a late copy of the charge's total.
    before = payment(db, pid)
    kinds = ("charge.refund.updated", "refund.updated", "refund.failed")
    delivered = {kind: stripe_event(kind, refund.id) for kind in kinds}
    first = [kind for kind, e in delivered.items() if e["id"] in before["stripe_event_ids"]]
    assert len(first) == 1, first
    for kind, e in delivered.items():
        payload = json.dumps(e)
        r = post_webhook(payload, sign(payload))
        assert (r.status_code, r.json()["outcome"]) == (200, "duplicate" if kind in first else "already_refund_failed")
    sent = delivered["charge.refund.updated"]
    older = {**sent["data"]["object"], "status": "succeeded", "failure_reason": None}
    r = post_webhook(*signed("charge.refund.updated", older, sent["created"] - 5))
    assert (r.status_code, r.json()["outcome"]) == (200, "stale_refund_failed")
    again = {**sent["data"]["object"]}
    assert post_webhook(*signed("refund.failed", again, sent["created"] + 5)).json()["outcome"] == "already_refund_failed"
    late_total = json.loads(str(stripe_client().v1.charges.retrieve(refund.charge)))
    late_total.update(amount_refunded=2000, refunded=True)  # a copy of the charge from before the failure
    r = post_webhook(*signed("charge.refunded", late_total, sent["created"]))
    assert (r.status_code, r.json()["outcome"]) == (200, "already_succeeded")  # Stripe's charge now says 0
    after = payment(db, pid)
    assert {k: v for k, v in after.items() if k != "stripe_event_ids"} == \
        {k: v for k, v in before.items() if k != "stripe_event_ids"}
    settled(db)
    assert len(events_of(db, "payment.refund_failed", order_id=oid)) == 1
    assert len(alerts_of(db, admin.uid, "refund_failed")) == 1
    assert len(events_of(db, "payment.refunded", order_id=oid)) == 1
    assert order(db, oid)["amount_refunded"] == 0
    answer = call("payments_run_reconciliation", {"minutes": 5}, user=admin)
    assert answer["applied"] == 0 and answer["errors"] == 0  # Stripe and the payment agree


def test_reconciliation_finds_a_refund_failure_whose_webhooks_were_lost(admin, member, db):
    out, intent, pi = paid_order(db, member)
    pid, oid = intent["payment_id"], out["order_id"]
    lost = {kind: dropped(kind) for kind in ("charge.refund.updated", "refund.updated", "refund.failed")}
    for kind in lost:
        standin("webhooks/drop", count=5, type=kind)
    assert call("orders_cancel", {"order_id": oid}, user=member)["status"] == "cancelled"
    eventually(lambda: order(db, oid)["status"] == "refunded", what="order refunded")
    refund = refund_of(pi)
    standin(f"refunds/{refund.id}/fail", failure_reason="lost_or_stolen_card")  # at the card network, days later
    eventually(lambda: all(dropped(kind) > n for kind, n in lost.items()), what="the failure's webhooks lost")
    assert payment(db, pid)["amount_refunded"] == 2000 and charged(pi) == 2000  # we do not know yet
    # Found among Stripe's refund events (kept 30 days: a refund can fail weeks after its intent
    # left the intents' window), before the intents' pass, which then finds nothing left to apply.
    answer = call("payments_run_reconciliation", {"minutes": 5}, user=admin)
    assert (answer["refund_failures_applied"], answer["applied"], answer["errors"]) == (1, 0, 0), answer
    assert answer["refund_failures_checked"] >= 1
    repaired = payment(db, pid)
    assert (repaired["amount_refunded"], repaired["status"], repaired["needs_review"]) == (0, "succeeded", True)
    assert repaired["refund_statuses"][refund.id] == "failed"
    assert repaired["refund_failure_reason"] == "lost_or_stolen_card"
    eventually(lambda: order(db, oid).get("review_reason") == "refund_failed", what="the order flagged")
    eventually(lambda: alerts_of(db, admin.uid, "refund_failed"), what="the admins alerted")
    again = call("payments_run_reconciliation", {"minutes": 5}, user=admin)
    assert (again["refund_failures_applied"], again["applied"], again["errors"]) == (0, 0, 0), again
    settled(db)
    assert len(events_of(db, "payment.refund_failed", order_id=oid)) == 1
    assert order(db, oid)["amount_refunded"] == 0


def test_a_new_refund_after_a_failure_refunds_again_and_clears_the_flags(admin, member, db):
    """Staff refund again in the Stripe Dashboard once the customer has a working card: the
    payment and the order are refunded in full again and no longer flagged."""
    out, intent, pi = paid_order(db, member)
    pid, oid = intent["payment_id"], out["order_id"]
    assert call("orders_cancel", {"order_id": oid}, user=member)["status"] == "cancelled"
    eventually(lambda: order(db, oid)["status"] == "refunded", what="order refunded")
    first = refund_of(pi)
    standin(f"refunds/{first.id}/fail")
    eventually(lambda: order(db, oid).get("needs_review") and order(db, oid)["amount_refunded"] == 0,
               what="the order flagged")
    second = stripe_client().v1.refunds.create(params={"payment_intent": pi})  # an operator in the Dashboard
    assert (second.amount, second.status) == (2000, "succeeded")
    eventually(lambda: payment(db, pid)["status"] == "refunded", what="payment refunded again")
    eventually(lambda: order(db, oid).get("needs_review") is False, what="the order's flag cleared")
    assert order(db, oid)["amount_refunded"] == 2000 and order(db, oid)["status"] == "refunded"
    done = payment(db, pid)
    assert (done["amount_refunded"], done["needs_review"], done["refund_failures"]) == (2000, False, 1)
    assert charged(pi) == 0


def test_a_refund_stripe_answers_failed_is_a_dead_letter_at_once_and_its_replay_refunds_once(admin, member, db):
    """Stripe answers the cancelled order's refund ``failed``: the failure is recorded once
    (payment flagged, every admin alerted once) and nothing retries it: the delivery that asked
    for the refund is a dead letter at its first attempt (staff may have returned the money
    another way). An admin's replay of that dead letter refunds again under new keys (Stripe
    would replay the failed refund for the old ones): one refund reaches the customer."""
    from flowsuite.notifications.service import admin_uids

    out, intent, pi = paid_order(db, member)
    pid, oid = intent["payment_id"], out["order_id"]
    standin(f"charges/{stripe_intent(pi).latest_charge}/next_refund", status="failed", failure_reason="declined")
    assert call("orders_cancel", {"order_id": oid}, user=member)["status"] == "cancelled"
    cancelled = eventually(lambda: events_of(db, "order.cancelled", order_id=oid), what="order.cancelled")[0]
    letter_id = f"{cancelled['id']}:payments_on_order_cancelled"
    letter = eventually(lambda: harness.doc(db, f"dead_letters/{letter_id}"), timeout=45,
                        what="the failed refund's delivery a dead letter")
    failed_refund = refund_of(pi)
    assert (failed_refund.status, failed_refund.failure_reason) == ("failed", "declined")
    assert (letter["attempts"], letter["dead_reason"], letter["status"]) == (1, "permanent", "dead")
    assert "FailedPreconditionError" in letter["error"] and failed_refund.id in letter["error"]
    assert "Not retried automatically" in letter["error"]
    flagged = payment(db, pid)
    assert (flagged["status"], flagged["amount_refunded"], flagged["needs_review"], flagged["review_reason"]) == (
        "succeeded", 0, True, "refund_failed")
    assert (flagged["refund_failures"], flagged["refund_failures_ended"]) == (1, 1)
    assert flagged["refund_statuses"] == {failed_refund.id: "failed"} and flagged["refund_failure_reason"] == "declined"
    assert charged(pi) == 2000  # nothing refunded, and nothing retried: one refund at Stripe, failed
    assert [r.id for r in stripe_client().v1.refunds.list(params={"payment_intent": pi}).data] == [failed_refund.id]
    assert harness.doc(db, f"effects/stripe-refund-{pid}")["state"] == "FAILED"
    assert harness.doc(db, f"effects/stripe-refund-{pid}-retry1") is None
    eventually(lambda: order(db, oid).get("review_reason") == "refund_failed", what="the order flagged")
    admins = admin_uids(db)
    assert admin.uid in admins

    def alerted(uid: str) -> list[dict]:
        return [a for a in alerts_of(db, uid, "refund_failed") if failed_refund.id in a["body"]]

    eventually(lambda: all(alerted(uid) for uid in admins), what="every admin alerted")

    def quiet():  # every other delivery of the test processed; the refund's stays dead
        records = {s.id: s.to_dict() for s in db.collection("deliveries").stream()}
        return records[letter_id]["status"] == "dead" and all(
            r["status"] == "processed" for i, r in records.items() if i != letter_id)
    eventually(quiet, timeout=45, what="every other delivery processed")
    assert [len(alerted(uid)) for uid in admins] == [1] * len(admins)
    body = alerted(admin.uid)[0]["body"]
    assert "replay the refund's dead letter" in body and "return the money another way" in body
    assert len(events_of(db, "payment.refund_failed", order_id=oid)) == 1
    assert events_of(db, "payment.refunded", order_id=oid) == []
    assert payment(db, pid)["refund_failures"] == 1  # still: nothing tried again meanwhile
    # "Replay all" never refunds: staff may have returned the money another way; only its id replays it.
    assert harness.doc(db, f"dead_letters/{letter_id}")["manual_replay"] is True
    listed = {r["id"]: r for r in call("ops_list_dead_letters", {}, user=admin)["dead_letters"]}
    assert listed[letter_id]["manual_replay"] is True  # the console shows it
    skipped = call("ops_replay_dead_letters", {"all": True}, user=admin)["replayed"]
    assert letter_id not in {r["id"] for r in skipped}
    assert harness.doc(db, f"dead_letters/{letter_id}")["status"] == "dead" and charged(pi) == 2000

    replayed = call("ops_replay_dead_letters", {"ids": [letter_id]}, user=admin)  # the customer's card works now
    assert replayed["replayed"] == [{"id": letter_id, "outcome": "processed"}]
    refunds = {r.status: r for r in stripe_client().v1.refunds.list(params={"payment_intent": pi}).data}
    assert sorted(refunds) == ["failed", "succeeded"] and refunds["failed"].id == failed_refund.id
    assert refunds["succeeded"].amount == 2000 and charged(pi) == 0  # one refund counted: never two
    done = payment(db, pid)
    assert done["refund_statuses"] == {failed_refund.id: "failed", refunds["succeeded"].id: "succeeded"}
    assert (done["status"], done["refund_id"], done["amount_refunded"]) == ("refunded", refunds["succeeded"].id, 2000)
    assert (done["refund_failures"], done["refund_failures_ended"], done["needs_review"]) == (1, 1, False)
    first, retry = harness.doc(db, f"effects/stripe-refund-{pid}"), harness.doc(db, f"effects/stripe-refund-{pid}-retry1")
    assert first["state"] == "FAILED" and failed_refund.id in first["error"]
    assert retry["state"] == "SUCCEEDED" and retry["result"]["id"] == refunds["succeeded"].id
    eventually(lambda: order(db, oid)["status"] == "refunded" and not order(db, oid).get("needs_review"),
               what="the order refunded and its flag cleared")
    settled(db)
    assert order(db, oid)["amount_refunded"] == 2000
    assert len(events_of(db, "payment.refund_failed", order_id=oid)) == 1
    assert len(events_of(db, "payment.refunded", order_id=oid)) == 1
    assert [len(alerted(uid)) for uid in admins] == [1] * len(admins)  # the replay alerted nobody again
    letter = harness.doc(db, f"dead_letters/{letter_id}")
    assert (letter["status"], letter["replay_outcome"]) == ("replayed", "processed")
