"""Events the orders domain publishes (the contracts payments and notifications use)."""

from flowsuite.core.events import EventData, event_type


class Line(EventData):
    product_id: str
    name: str
    unit_price: int
    quantity: int


@event_type("order.placed", source="orders")
class OrderPlaced(EventData):
    """An order was placed and its stock reserved; payment can start."""

    order_id: str
    uid: str
    total: int
    currency: str
    items: list[Line]


@event_type("order.paid", source="orders")
class OrderPaid(EventData):
    """An order's payment succeeded."""

    order_id: str
    uid: str
    total: int
    currency: str
    payment_id: str


@event_type("order.cancelled", source="orders")
class OrderCancelled(EventData):
    """An order was cancelled and its stock released. ``was_paid``: payments refunds it."""

    order_id: str
    uid: str
    reason: str
    was_paid: bool
    payment_id: str | None = None
    total: int
    currency: str


@event_type("order.cancel_requested", source="orders")
class OrderCancelRequested(EventData):
    """An unpaid order is being cancelled (by its owner, staff, the expiry or an account deletion):
    payments closes its PaymentIntent at Stripe first, then the stock is released."""

    order_id: str
    uid: str
    reason: str


@event_type("order.payment_rejected", source="orders")
class OrderPaymentRejected(EventData):
    """A payment succeeded for an order that can no longer be paid (cancelled, refunded, erased,
    or an amount that does not match): payments refunds it."""

    order_id: str
    uid: str
    payment_id: str
    reason: str


@event_type("order.refunded", source="orders")
class OrderRefunded(EventData):
    """A paid order was refunded in full (after a cancellation or from the Stripe Dashboard)."""

    order_id: str
    uid: str
    total: int
    currency: str


@event_type("order.fulfilled", source="orders")
class OrderFulfilled(EventData):
    """Staff fulfilled a paid order."""

    order_id: str
    uid: str


@event_type("order.needs_review", source="orders")
class OrderNeedsReview(EventData):
    """A paid order that is not fulfilled lost its customer (the account was deleted): it stays
    paid, anonymised and marked ``needs_review``; staff fulfil it, or cancel it, which refunds it
    through Stripe. Names no person."""

    order_id: str
    reason: str
    status: str
    total: int
    currency: str
