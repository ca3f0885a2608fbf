"""Payments on the real emulators and localstripe, through the real stripe SDK."""

from __future__ import annotations

import time
import uuid

import pytest

from testkit import harness
from testkit.harness import AppClient, CallableError, Denied, Ref, call, eventually
from testkit.payments import confirm, event, post_webhook, sign, stripe_client
from testkit.shop import events_of, order, place, product, stock


def intent_for(user, order_id: str, key: str | None = None) -> dict:
    return call("payments_create_intent", {"order_id": order_id, "idempotency_key": key or uuid.uuid4().hex}, user=user)


def payment(db, payment_id: str) -> dict:
    return harness.doc(db, f"payments/{payment_id}")


def checkout(db, member, item=None, qty: int = 1, card: str = "4242424242424242") -> tuple[dict, dict]:
    out = place(member, [(item or product(db), qty)])
    intent = intent_for(member, out["order_id"])
    confirm(stripe_client_intent_id(db, intent["payment_id"]), card)
    return out, intent


def stripe_client_intent_id(db, payment_id: str) -> str:
    return payment(db, payment_id)["provider_ref"]


def test_happy_path_place_pay_webhook_paid(member, db):
    item = product(db, price=1999, stock=3)
    out = place(member, [(item, 2)])
    intent = intent_for(member, out["order_id"])
    assert (intent["amount"], intent["currency"]) == (3998, "usd")
    assert intent["client_secret"].startswith("pi_") and intent["customer"].startswith("cus_")
    pi = stripe_client().v1.payment_intents.retrieve(payment(db, intent["payment_id"])["provider_ref"])
    assert pi.amount == 3998 and pi.customer == intent["customer"]
    assert confirm(pi.id).status == "succeeded"
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "succeeded", what="payment succeeded")
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    assert order(db, out["order_id"])["payment_id"] == intent["payment_id"]
    assert len(events_of(db, "payment.succeeded", order_id=out["order_id"])) == 1
    assert stock(db, item) == 1


def test_a_live_account_whose_profile_was_removed_by_hand_still_pays(db):
    """A profile deleted in the console (or never made by the app's own sign-up) is not a
    deleted account: with no identity.user_deleted published for it, its payment is recorded
    under its uid and the order is paid, nothing erased."""
    user = harness.sign_up()
    out = place(user, [(product(db, price=1500, stock=2), 1)])
    db.document(f"users/{user.uid}").delete()  # an operator in the console
    intent = intent_for(user, out["order_id"])
    recorded = payment(db, intent["payment_id"])
    assert (recorded["uid"], recorded["status"]) == (user.uid, "requires_payment")
    assert harness.doc(db, f"stripe_customers/{user.uid}")["customer_id"] == intent["customer"]
    assert confirm(recorded["provider_ref"]).status == "succeeded"
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")


def test_the_customer_is_created_once_and_repeats_return_the_same_intent(member, db):
    a = place(member, [(product(db), 1)])
    b = place(member, [(product(db), 1)])
    key = uuid.uuid4().hex
    first, again = intent_for(member, a["order_id"], key), intent_for(member, a["order_id"], key)
    other_key = intent_for(member, a["order_id"])
    assert first == again and other_key["client_secret"] == first["client_secret"]
    assert intent_for(member, b["order_id"])["customer"] == first["customer"]
    assert len(list(db.collection("payments").stream())) == 2
    assert harness.doc(db, f"stripe_customers/{member.uid}")["customer_id"] == first["customer"]


def test_a_declined_card_is_recorded_and_the_order_stays_payable(member, db):
    item = product(db, stock=2)
    out, intent = checkout(db, member, item, 2, card="4000000000000341")
    eventually(lambda: payment(db, intent["payment_id"]).get("failed_attempts") == 1, what="attempt recorded")
    assert payment(db, intent["payment_id"])["failure_reason"]
    assert payment(db, intent["payment_id"])["status"] == "requires_payment"
    assert order(db, out["order_id"])["status"] == "pending_payment" and stock(db, item) == 0


def test_cancelling_a_paid_order_refunds_it(member, db):
    out, intent = checkout(db, member)
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")
    call("orders_cancel", {"order_id": out["order_id"]}, user=member)
    eventually(lambda: payment(db, intent["payment_id"])["status"] == "refunded", what="payment refunded")
    eventually(lambda: order(db, out["order_id"])["status"] == "refunded", what="order refunded")
    refund_id = payment(db, intent["payment_id"])["refund_id"]
    assert stripe_client().v1.refunds.retrieve(refund_id).amount == out["total"]
    assert len(events_of(db, "payment.refunded", order_id=out["order_id"])) == 1


def test_create_intent_refusals(member, db):
    other = harness.sign_up()
    theirs = place(other, [(product(db), 1)])
    with pytest.raises(CallableError) as err:
        intent_for(member, theirs["order_id"])
    assert err.value.code == "permission-denied"
    with pytest.raises(CallableError) as err:
        intent_for(member, "no-such-order")
    assert err.value.code == "not-found"
    mine = place(member, [(product(db), 1)])
    assert call("orders_cancel", {"order_id": mine["order_id"]}, user=member)["status"] == "cancelling"
    with pytest.raises(CallableError) as err:
        intent_for(member, mine["order_id"])
    assert err.value.code == "failed-precondition"
    eventually(lambda: order(db, mine["order_id"])["status"] == "cancelled", what="cancelled without an intent")
    assert payment(db, "pay_" + mine["order_id"])["status"] == "canceled"  # so an intent made later is closed too
    fresh = place(member, [(product(db), 1)])
    key = uuid.uuid4().hex
    intent_for(member, fresh["order_id"], key)
    another = place(member, [(product(db), 1)])
    with pytest.raises(CallableError) as err:
        intent_for(member, another["order_id"], key)
    assert err.value.code == "invalid-argument" and err.value.fields == ["idempotency_key"]
    with pytest.raises(CallableError) as err:
        call("payments_create_intent", {"order_id": fresh["order_id"]}, user=None)
    assert err.value.code == "unauthenticated"


def pending_payment(db, member) -> tuple[dict, dict, str]:
    out = place(member, [(product(db), 1)])
    intent = intent_for(member, out["order_id"])
    return out, intent, payment(db, intent["payment_id"])["provider_ref"]


@pytest.mark.parametrize("case", ["forged", "stale", "missing", "garbage"])
def test_a_bad_webhook_is_refused_and_writes_nothing(member, db, case):
    out, intent, pi = pending_payment(db, member)
    payload = event("payment_intent.succeeded", {"id": pi, "object": "payment_intent", "status": "succeeded"})
    signature = {
        "forged": sign(payload, secret="whsec_attacker"),
        "stale": sign(payload, timestamp=int(time.time()) - 301),
        "missing": None,
        "garbage": "t=1,v1=deadbeef",
    }[case]
    r = post_webhook(payload, signature)
    assert r.status_code == 400
    assert payment(db, intent["payment_id"])["status"] == "requires_payment"
    assert not payment(db, intent["payment_id"]).get("stripe_event_ids")
    assert events_of(db, "payment.succeeded") == []


def test_an_oversized_webhook_is_refused(member, db):
    payload = event("payment_intent.succeeded", {"id": "pi_x", "pad": "x" * 300_000})
    assert post_webhook(payload, sign(payload)).status_code == 413


def test_the_same_stripe_event_twice_has_one_effect(member, db):
    out, intent, pi = pending_payment(db, member)
    payload = event("payment_intent.succeeded", {"id": pi, "object": "payment_intent"}, event_id="evt_replayed_1")
    first, second = post_webhook(payload, sign(payload)), post_webhook(payload, sign(payload))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["outcome"] == "succeeded" and second.json()["outcome"] == "duplicate"
    assert len(events_of(db, "payment.succeeded", order_id=out["order_id"])) == 1
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="order paid")


def test_an_unhandled_event_type_answers_200_and_changes_nothing(member, db):
    out, intent, pi = pending_payment(db, member)
    payload = event("customer.updated", {"id": "cus_1", "object": "customer"})
    r = post_webhook(payload, sign(payload))
    assert r.status_code == 200 and r.json()["outcome"] == "ignored"
    assert not payment(db, intent["payment_id"]).get("stripe_event_ids")
    assert payment(db, intent["payment_id"])["status"] == "requires_payment"


def test_an_event_naming_an_unrecorded_payment_asks_stripe_to_retry(db):
    payload = event("payment_intent.succeeded", {"id": "pi_unrecorded", "object": "payment_intent",
                                                 "metadata": {"flowsuite_payment_id": "pay_unrecorded"}})
    assert post_webhook(payload, sign(payload)).status_code == 503
    foreign = event("payment_intent.succeeded", {"id": "pi_other_app", "metadata": {"app": "other"}})
    r = post_webhook(foreign, sign(foreign))
    assert r.status_code == 200 and r.json()["outcome"] == "not_ours"


def test_rules_payments_and_customers(member, staff, db):
    out, intent, _ = pending_payment(db, member)
    other = harness.sign_up()
    app = AppClient(member)
    assert app.get(f"payments/{intent['payment_id']}")["amount"] == out["total"]
    assert len(app.query("payments", where=[("user_ref", "==", Ref.to(f"users/{member.uid}"))])) == 1
    assert len(app.query("payments", where=[("uid", "==", member.uid)])) == 1
    with pytest.raises(Denied):
        AppClient(other).get(f"payments/{intent['payment_id']}")
    with pytest.raises(Denied):
        app.query("payments")
    with pytest.raises(Denied):
        app.update(f"payments/{intent['payment_id']}", {"status": "succeeded"})
    with pytest.raises(Denied):
        app.create("payments", "forged", {"uid": member.uid, "status": "succeeded"})
    with pytest.raises(Denied):
        app.get(f"stripe_customers/{member.uid}")
    with pytest.raises(Denied):
        app.create("stripe_customers", member.uid, {"customer_id": "cus_evil"})
    assert AppClient(staff).get(f"payments/{intent['payment_id']}")["uid"] == member.uid
    with pytest.raises(Denied):
        AppClient(None).get(f"payments/{intent['payment_id']}")


def test_deleting_the_account_unlinks_payments(member, db):
    out, intent = checkout(db, member)
    eventually(lambda: order(db, out["order_id"])["status"] == "paid", what="paid")
    call("identity_delete_account", {}, user=member)
    eventually(lambda: payment(db, intent["payment_id"]).get("anonymised"), what="payment unlinked")
    kept = payment(db, intent["payment_id"])
    assert kept["status"] == "succeeded" and kept["amount"] == out["total"] and member.uid not in repr(kept)
    eventually(lambda: harness.doc(db, f"stripe_customers/{member.uid}") is None, what="customer record gone")


def test_a_transient_failure_answers_5xx_so_stripe_retries_and_the_retry_applies_once(member, db):
    out, intent, pi = pending_payment(db, member)
    payload = event("payment_intent.succeeded", {"id": pi, "object": "payment_intent"}, event_id="evt_transient_1")
    db.document("_faults/payments.webhook").set({"remaining": 1})
    first = post_webhook(payload, sign(payload))
    assert first.status_code == 500
    assert not payment(db, intent["payment_id"]).get("stripe_event_ids")
    assert payment(db, intent["payment_id"])["status"] == "requires_payment"
    retry = post_webhook(payload, sign(payload))  # Stripe's retry
    assert retry.status_code == 200 and retry.json()["outcome"] == "succeeded"
    assert len(events_of(db, "payment.succeeded", order_id=out["order_id"])) == 1
