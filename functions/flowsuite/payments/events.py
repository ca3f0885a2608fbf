"""Events the payments domain publishes (the contracts orders and notifications use)."""

from __future__ import annotations

from flowsuite.core.events import EventData, event_type


@event_type("payment.succeeded", source="payments")
class PaymentSucceeded(EventData):
    """Stripe confirmed the payment of an order."""

    payment_id: str
    order_id: str
    uid: str
    amount: int
    currency: str


@event_type("payment.failed", source="payments")
class PaymentFailed(EventData):
    """The payment of an order failed (declined card, expired authentication)."""

    payment_id: str
    order_id: str
    uid: str
    reason: str = ""


@event_type("payment.refunded", source="payments")
class PaymentRefunded(EventData):
    """A succeeded payment was refunded in full."""

    payment_id: str
    order_id: str
    uid: str
    amount: int
    currency: str
