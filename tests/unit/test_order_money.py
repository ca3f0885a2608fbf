"""Money flows whose events arrive out of order, and disputes: the pure decisions. The
sequences run on the emulators (tests/integration/test_orders.py,
tests/integration/test_payment_lifecycle.py)."""

from __future__ import annotations

import pytest
from flowsuite.orders import service as orders
from flowsuite.payments.events import PaymentRefunded

ORDER = {"status": "pending_payment", "payment_id": None, "total": 2000, "currency": "usd"}


def refund(**fields) -> PaymentRefunded:
    return PaymentRefunded(**{"payment_id": "pay_o1", "order_id": "o1", "uid": "u1", "amount": 2000,
                              "currency": "usd", "amount_refunded": 2000, "full": True, **fields})


@pytest.mark.parametrize(("order", "data", "waits"), [
    (ORDER, refund(), True),  # the success has not reached the order yet
    ({**ORDER, "status": "cancelling"}, refund(), True),  # a cancelling order is still paid by its success
    (ORDER, refund(amount=500, amount_refunded=500, full=False), True),  # a partial refund waits too
    ({**ORDER, "status": "paid", "payment_id": "pay_o1"}, refund(), False),  # paid: the refund applies now
    ({**ORDER, "status": "cancelled"}, refund(), False),  # its success is (or will be) rejected
    ({**ORDER, "anonymised": True}, refund(), False),  # likewise: the account is gone
    (ORDER, refund(currency="eur"), False),  # a success in another currency never pays it
    (ORDER, refund(amount=1500, amount_refunded=1500), False),  # a full refund of another amount: likewise
    ({**ORDER, "payment_id": "pay_other"}, refund(), False),
])
def test_a_refund_waits_for_its_success_only_while_that_success_would_pay_the_order(order, data, waits):
    assert orders.refund_awaits_success(order, data) is waits


# ---- disputes: no cancellation (no refund) while one is open ------------------------------

@pytest.mark.parametrize(("dispute", "open_"), [
    ({}, False),
    ({"dispute_id": "dp_1", "dispute_status": "needs_response", "dispute_closed": False}, True),
    # an inquiry withdrew no funds and can be refunded (which resolves it): it blocks nothing
    ({"dispute_id": "dp_1", "dispute_status": "warning_needs_response", "dispute_closed": False}, False),
    ({"dispute_id": "dp_1", "dispute_status": "warning_under_review", "dispute_closed": False}, False),
    ({"dispute_id": "dp_1", "dispute_status": "under_review", "dispute_closed": False}, True),
    ({"dispute_id": "dp_1", "dispute_status": "won", "dispute_closed": True}, False),
    ({"dispute_id": "dp_1", "dispute_status": "lost", "dispute_closed": True}, False),
    ({"dispute_id": "dp_1", "dispute_status": "warning_closed", "dispute_closed": True}, False),
])
def test_an_order_is_under_an_open_chargeback_until_stripe_closes_it(dispute, open_):
    assert orders.dispute_open({**ORDER, "status": "paid", **dispute}) is open_


def test_only_a_disputed_charge_is_a_final_refund_refusal():
    import stripe
    from flowsuite.payments import service as payments

    disputed = stripe.InvalidRequestError("The charge has been charged back.", None, code="charge_disputed")
    assert payments.final_refund_refusal(disputed) == "charge_disputed"
    for transient in (stripe.InvalidRequestError("No such payment_intent", "payment_intent", code="resource_missing"),
                      stripe.APIConnectionError("connection reset"), RuntimeError("charge_disputed")):
        assert payments.final_refund_refusal(transient) is None


# ---- dispute events out of order ------------------------------------------------------------

T = 1_700_000_000


@pytest.mark.parametrize(("known", "event", "applies"), [
    ((None, None, 0), ("dp_1", "needs_response", T), True),  # the first one
    (("dp_1", "under_review", T), ("dp_1", "needs_response", T - 60), False),  # a late created after an update
    (("dp_1", "needs_response", T), ("dp_1", "under_review", T + 60), True),
    (("dp_1", "under_review", T), ("dp_1", "won", T + 60), True),
    (("dp_1", "won", T), ("dp_1", "under_review", T + 60), False),  # a closed dispute never reopens
    (("dp_1", "lost", T), ("dp_1", "won", T + 60), True),  # a newer close wins
    (("dp_1", "under_review", T), ("dp_1", "needs_response", T), False),  # the same second: by the stages
    (("dp_1", "needs_response", T), ("dp_1", "under_review", T), True),
    (("dp_1", "under_review", T), ("dp_1", "under_review", T), True),  # a repeat: unchanged, applied
    (("dp_1", "warning_under_review", T), ("dp_1", "needs_response", T), True),  # an inquiry became a chargeback
    (("dp_1", "under_review", T), ("dp_2", "needs_response", T - 60), False),  # another dispute, older
    (("dp_1", "under_review", T), ("dp_2", "needs_response", T + 60), True),
    (("dp_1", "under_review", T), ("dp_1", "needs_response", 0), True),  # no time (an older publisher): applied
    (("dp_1", "won", T), ("dp_1", "needs_response", 0), False),  # ... but never reopens a closed one
])
def test_an_older_dispute_event_never_steps_the_status_back(known, event, applies):
    from flowsuite.contracts.disputes import dispute_step_applies

    (known_id, known_status, known_time), (dispute_id, status, created) = known, event
    assert dispute_step_applies(known_id=known_id, known_status=known_status, known_time=known_time,
                                dispute_id=dispute_id, status=status, created=created) is applies
