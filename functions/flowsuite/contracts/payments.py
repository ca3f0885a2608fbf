"""Events the payments domain publishes (the contracts orders and notifications use)."""

from flowsuite.core.events import EventData, event_type


@event_type("payment.succeeded", source="payments")
class PaymentSucceeded(EventData):
    """Stripe confirmed the payment of an order (the order is paid, or refunded if it can no longer be)."""

    payment_id: str
    order_id: str
    uid: str
    amount: int
    currency: str


@event_type("payment.failed", source="payments")
class PaymentFailed(EventData):
    """An attempt to pay an order failed (a declined card). Not final: the same PaymentIntent
    stays payable with another card until the order is cancelled or expires."""

    payment_id: str
    order_id: str
    uid: str
    reason: str = ""
    attempt: int = 1


@event_type("payment.canceled", source="payments")
class PaymentCanceled(EventData):
    """The order's PaymentIntent is closed at Stripe (or none was ever created): nobody can pay it
    any more, so the order's stock can be released."""

    payment_id: str
    order_id: str
    uid: str
    reason: str = ""


@event_type("payment.refunded", source="payments")
class PaymentRefunded(EventData):
    """Money went back to the customer: ``amount`` this time, ``amount_refunded`` in all;
    ``full`` when nothing of the payment is left."""

    payment_id: str
    order_id: str
    uid: str
    amount: int
    currency: str
    amount_refunded: int | None = None
    full: bool = True
    reason: str = ""


@event_type("payment.disputed", source="payments")
class PaymentDisputed(EventData):
    """A customer's bank opened, updated or closed a dispute (chargeback) on a payment."""

    payment_id: str
    order_id: str
    uid: str
    dispute_id: str
    status: str
    reason: str = ""
    amount: int
    currency: str
    closed: bool = False
    created: int = 0  # Stripe's `created` of the dispute event (seconds): a subscriber ignores an older one


@event_type("payment.refund_failed", source="payments")
class PaymentRefundFailed(EventData):
    """A refund did not reach the customer: Stripe says it ``failed`` (``reason``: Stripe's
    failure_reason, e.g. expired_or_canceled_card) or was ``canceled``, even after it first said
    ``succeeded``, and put the money back on the merchant's balance. ``amount_refunded`` is what
    is refunded of the payment now (the charge's own total, read from Stripe). It is not retried
    automatically: staff replay the refund's dead letter to refund again, or return the money
    another way; the payment and the order are flagged for them."""

    payment_id: str
    order_id: str
    uid: str
    refund_id: str
    status: str
    reason: str = ""
    amount: int
    currency: str
    amount_refunded: int
