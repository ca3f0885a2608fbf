"""A notification about an order announces what the order is now (issue 22, point 5)."""

import pytest
from flowsuite.notifications.service import STILL_TRUE, stale_reason


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("order_paid", "paid", None),
        ("order_paid", "fulfilled", None),
        ("order_paid", "refunded", "order_refunded"),  # a replayed receipt for a refunded order
        ("order_paid", "cancelled", "order_cancelled"),  # cancelled after payment: a refund is on its way
        ("payment_failed", "pending_payment", None),  # "try another card" is still true
        ("payment_failed", "paid", "order_paid"),  # a late decline notice after another card paid
        ("payment_failed", "cancelled", "order_cancelled"),
        ("payment_failed", "cancelling", "order_cancelling"),
        ("order_cancelled", "refunded", None),  # a cancellation stays true
        ("payment_refunded", "refunded", None),
        ("welcome", None, None),
    ],
)
def test_a_notification_is_sent_only_while_what_it_announces_is_true(kind, status, reason):
    assert stale_reason(kind, {"status": status}) == reason


def test_without_an_order_document_nothing_contradicts_the_event():
    assert stale_reason("order_paid", None) is None


def test_only_order_statuses_are_named():
    from flowsuite.orders.states import STATUSES

    assert all(status in STATUSES for statuses in STILL_TRUE.values() for status in statuses)
