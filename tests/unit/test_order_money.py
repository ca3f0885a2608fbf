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
