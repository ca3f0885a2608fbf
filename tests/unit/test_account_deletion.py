"""Deletion with open business (issue 22, point 8): what erasure does to orders and to
FlutterFlow's push documents. Pure."""

from __future__ import annotations

import pytest
from flowsuite.notifications import ffpush
from flowsuite.notifications.templates import TEMPLATES
from flowsuite.orders import service as orders
from flowsuite.orders import states


def order(status: str, **fields) -> dict:
    return {"order_id": "o1", "uid": "u1", "status": status, "total": 2500, "currency": "eur",
            "history": [{"status": "pending_payment", "at": 1, "by": "u1"}, {"status": status, "at": 2, "by": "payments"}],
            **fields}


def test_a_paid_order_not_fulfilled_is_kept_anonymised_and_flagged_to_staff():
    fields = orders.anonymised(order(states.PAID), "u1")
    assert fields["uid"] == orders.DELETED_USER and fields["user_ref"] is None and fields["anonymised"] is True
    assert (fields["needs_review"], fields["review_reason"]) == (True, "account_deleted")
    assert [h["by"] for h in fields["history"]] == [orders.DELETED_USER, "payments"]
    assert not {"total", "currency", "items", "status", "payment_id"} & set(fields)  # accounting keeps them


@pytest.mark.parametrize("status", [states.FULFILLED, states.REFUNDED, states.CANCELLED, states.CANCELLING,
                                    states.PENDING_PAYMENT])
def test_only_paid_orders_are_open_business(status):
    assert not orders.open_business(order(status))
    assert "needs_review" not in orders.anonymised(order(status), "u1")


def test_staff_are_told_in_words_that_say_what_to_do():
    title, text, _ = TEMPLATES["order_review"].render({"order_id": "o1", "amount": "25.00 EUR", "status": "paid"})
    assert title == "Order o1 needs review"
    assert "deleted their account" in text and "fulfil it, or cancel it to refund" in text
    assert set(TEMPLATES["order_review"].channels) == {"inbox", "email"}


# ---- FlutterFlow push documents ------------------------------------------------------

def test_a_user_is_taken_out_of_user_refs_and_the_others_stay():
    assert ffpush.without_user("users/a,users/u1,/users/b", "u1") == "users/a,/users/b"
    assert ffpush.without_user("/users/u1", "u1") == ""
    assert ffpush.without_user("users/u10,users/u1", "u1") == "users/u10"  # a prefix is another user
    full = "projects/p/databases/(default)/documents/users/u1"
    assert ffpush.without_user(f"{full},users/c", "u1") == "users/c"
    assert ffpush.without_user(None, "u1") == ""


def push(**fields) -> dict:
    return {"notification_title": "Hi", "notification_text": "there", "status": "succeeded", **fields}


def test_a_targeted_push_the_user_sent_is_deleted():
    doc = push(sender="users/u1", user_refs="users/friend", recipient_uids=["friend"])
    assert ffpush.erasure_of(doc, "u1", targeted=True) == ffpush.DELETE


def test_a_push_left_with_no_recipient_is_deleted():
    assert ffpush.erasure_of(push(sender="users/x", user_refs="users/u1"), "u1", targeted=True) == ffpush.DELETE
    # a broadcast with empty user_refs would go to everyone: deleted too
    assert ffpush.erasure_of(push(user_refs="/users/u1"), "u1", targeted=False) == ffpush.DELETE


def test_the_user_leaves_a_push_with_other_recipients():
    doc = push(sender="users/x", user_refs="users/u1,users/y", recipient_uids=["u1", "y"])
    assert ffpush.erasure_of(doc, "u1", targeted=True) == {"user_refs": "users/y", "recipient_uids": ["y"]}
    legacy = push(user_refs="users/y,users/u1")  # processed before recipients were recorded
    assert ffpush.erasure_of(legacy, "u1", targeted=False) == {"user_refs": "users/y"}


def test_a_broadcast_an_admin_sent_stays_without_its_sender():
    doc = push(sender="users/u1", user_refs="users/y", recipient_uids=["y"])
    assert ffpush.erasure_of(doc, "u1", targeted=False) == {"sender": None}
    assert ffpush.erasure_of(push(sender="users/u1"), "u1", targeted=False) == {"sender": None}


def test_a_broadcast_the_user_sent_still_to_be_sent_fails_without_its_sender():
    """Without its sender it would pass for a broadcast written past the rules, and go out."""
    failed = {"sender": None, "status": "failed", "num_sent": 0,
              "error": "the sender's account was deleted before it was sent"}
    for status in ("", "started", None):
        scheduled = push(sender="users/u1", status=status, scheduled_for="later")
        assert ffpush.erasure_of(scheduled, "u1", targeted=False) == failed
    doc = push(sender="users/u1", status="", user_refs="users/u1,users/y")
    assert ffpush.erasure_of(doc, "u1", targeted=False) == {"user_refs": "users/y", **failed}


def test_a_push_that_does_not_name_the_user_is_left_alone():
    assert ffpush.erasure_of(push(sender="users/x", user_refs="users/u10"), "u1", targeted=True) is None
    assert ffpush.erasure_of(push(), "u1", targeted=False) is None


def test_recorded_recipients_are_a_server_field_a_push_may_carry():
    request, problem = ffpush.check(push(status="", user_refs="users/a", recipient_uids=["a"]))
    assert problem is None and request is not None
    assert "recipient_uids" in ffpush.SERVER_FIELDS and "recipient_uids" not in ffpush.APP_FIELDS
