"""Deleting an account with an unpaid order that has no PaymentIntent yet (review finding 1):
neither the cancel request nor the closed payment payments records for it names the person.
No I/O: an in-memory stand-in for just the Firestore calls these paths make."""

from __future__ import annotations

import pytest
from flowsuite.orders import service as orders
from flowsuite.orders import states
from flowsuite.payments import service as payments

from testkit.memstore import Store, names

UID = "u-leaving-1"


def pending_order(order_id: str = "o-1") -> dict:
    return {"order_id": order_id, "uid": UID, "user_ref": f"users/{UID}", "status": states.PENDING_PAYMENT,
            "items": [{"product_id": "p1", "name": "Mug", "unit_price": 1250, "quantity": 1}],
            "total": 1250, "currency": "usd", "payment_id": None, "quota_held": True,
            "history": [{"status": states.PENDING_PAYMENT, "at": 1, "by": UID}]}


def test_erasing_a_pending_order_anonymises_it_and_the_cancel_request_names_no_one():
    store = Store({"orders/o-1": pending_order(), f"order_holds/{UID}": {"orders": 1, "units": 1}})
    orders.erase(store, UID)
    order = store.docs["orders/o-1"]
    assert (order["status"], order["uid"], order["user_ref"], order["anonymised"]) == \
        (states.CANCELLING, orders.DELETED_USER, None, True)
    assert [h["by"] for h in order["history"]] == [orders.DELETED_USER, "erasure"]  # the request kept its entry
    [erasure] = [c for c in store.commit_log if ("update", "orders/o-1") in c]
    assert erasure.count(("update", "orders/o-1")) == 1  # anonymised and cancelling: one write, one commit
    [request] = store.events("order.cancel_requested")
    assert (request["data"]["uid"], request["data"]["reason"]) == (orders.DELETED_USER, "account_deleted")
    assert not [p for p, d in store.docs.items() if UID in p or names(d, UID)]


def test_the_cancel_request_of_an_erased_account_records_a_closed_payment_that_names_no_one():
    store = Store({"orders/o-1": pending_order(), f"users/{UID}": {"uid": UID, "status": "deleting"}})
    orders.erase(store, UID)
    [request] = store.events("order.cancel_requested")
    outcome = payments.close_for_cancel(store, None, order_id="o-1", uid=request["data"]["uid"],
                                        reason=request["data"]["reason"], correlation_id=request["correlation_id"])
    assert outcome == "closed_without_intent"
    payment = store.docs["payments/pay_o-1"]
    assert (payment["status"], payment["uid"], payment["user_ref"], payment["anonymised"]) == \
        (payments.CANCELED, payments.DELETED_USER, None, True)
    [canceled] = store.events("payment.canceled")
    assert canceled["data"]["uid"] == payments.DELETED_USER
    del store.docs[f"users/{UID}"]  # identity's eraser: the only document left that should name the user
    assert not [p for p, d in store.docs.items() if UID in p or names(d, UID)]


@pytest.mark.parametrize("profile", [None, {"uid": UID, "status": "deleting"}])
def test_a_cancel_request_sent_before_the_deletion_and_delivered_after_it_names_no_one(profile):
    """The owner (or the expiry) asked to cancel with the real uid; the request arrives once the
    account is being deleted, perhaps after payments' eraser ran: the record it leaves is anonymous."""
    store = Store({"orders/o-1": {**pending_order(), "status": states.CANCELLING}}
                  | ({f"users/{UID}": profile} if profile else {}))
    assert payments.close_for_cancel(store, None, order_id="o-1", uid=UID, reason="cancelled_by_customer",
                                     correlation_id="c1") == "closed_without_intent"
    payment = store.docs["payments/pay_o-1"]
    assert (payment["uid"], payment["user_ref"], payment["anonymised"]) == (payments.DELETED_USER, None, True)
    assert store.events("payment.canceled")[0]["data"]["uid"] == payments.DELETED_USER


def test_a_live_accounts_cancel_request_records_the_closed_payment_as_theirs():
    store = Store({"orders/o-1": {**pending_order(), "status": states.CANCELLING},
                   f"users/{UID}": {"uid": UID, "status": "active"}})
    payments.close_for_cancel(store, None, order_id="o-1", uid=UID, reason="cancelled_by_customer", correlation_id="c1")
    payment = store.docs["payments/pay_o-1"]
    assert (payment["uid"], payment["user_ref"].path, payment.get("anonymised", False)) == (UID, f"users/{UID}", False)
    assert store.events("payment.canceled")[0]["data"]["uid"] == UID


@pytest.mark.parametrize(("uid", "profile", "gone"), [
    (UID, {"status": "active"}, False),
    (UID, {"status": "disabled"}, False),  # a disabled account still owns its payments
    (UID, {"status": "deleting"}, True),
    (UID, None, True),
    (payments.DELETED_USER, None, True),
])
def test_which_accounts_a_payment_record_may_name(uid, profile, gone):
    assert payments.account_gone(uid, profile) is gone
