"""The order state machine: every pair of statuses, allowed or refused."""

import itertools

import pytest
from flowsuite.core.errors import FailedPreconditionError
from flowsuite.orders import states

ALLOWED = {
    ("pending_payment", "paid"), ("pending_payment", "cancelling"), ("pending_payment", "cancelled"),
    ("cancelling", "cancelled"), ("cancelling", "paid"),
    ("paid", "fulfilled"), ("paid", "cancelled"), ("paid", "refunded"),
    ("fulfilled", "refunded"),
    ("cancelled", "refunded"),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(states.STATUSES, repeat=2)))
def test_each_transition(current, target):
    if (current, target) in ALLOWED:
        states.check(current, target, order_id="o1")
    else:
        with pytest.raises(FailedPreconditionError) as err:
            states.check(current, target, order_id="o1")
        assert err.value.details == {"order_id": "o1", "status": current, "wanted": target}


def test_orders_are_cancellable_while_pending_or_paid():
    assert [s for s in states.STATUSES if states.cancellable(s)] == ["pending_payment", "paid"]


def test_stock_is_held_until_the_payment_intent_is_closed_or_the_order_refunded():
    assert {"pending_payment", "cancelling", "paid"} == states.HOLDS_STOCK
    assert {"pending_payment", "cancelling"} == states.PAYABLE


def test_unpaid_orders_are_pending_or_cancelling():
    assert {"pending_payment", "cancelling"} == states.UNPAID
    # every way out of the unpaid statuses leaves them for good: the hold is released once
    for current in states.UNPAID:
        for target in states.TRANSITIONS[current] - states.UNPAID:
            assert not states.TRANSITIONS[target] & states.UNPAID
