"""The order state machine. Pure: every transition is checked here.

    pending_payment -> paid | cancelling | cancelled
    cancelling      -> cancelled | paid        (the PaymentIntent is closed at Stripe first;
                                                a payment that got there before wins)
    paid            -> fulfilled | cancelled | refunded
    fulfilled       -> refunded                (a full refund, e.g. in the Stripe Dashboard)
    cancelled       -> refunded                (a cancelled paid order, once refunded)
"""

from __future__ import annotations

from flowsuite.core.errors import FailedPreconditionError

PENDING_PAYMENT = "pending_payment"
CANCELLING = "cancelling"
PAID = "paid"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"
REFUNDED = "refunded"
STATUSES = (PENDING_PAYMENT, CANCELLING, PAID, FULFILLED, CANCELLED, REFUNDED)

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_PAYMENT: frozenset({PAID, CANCELLING, CANCELLED}),
    CANCELLING: frozenset({CANCELLED, PAID}),
    PAID: frozenset({FULFILLED, CANCELLED, REFUNDED}),
    CANCELLED: frozenset({REFUNDED}),
    FULFILLED: frozenset({REFUNDED}),
    REFUNDED: frozenset(),
}

# Statuses whose stock is still reserved (cancelling or refunding them releases it).
HOLDS_STOCK = frozenset({PENDING_PAYMENT, CANCELLING, PAID})
# Statuses in which a succeeded payment pays the order.
PAYABLE = frozenset({PENDING_PAYMENT, CANCELLING})
# Unpaid statuses: an order in one counts against its user's unpaid-order limits (no hoarding).
UNPAID = frozenset({PENDING_PAYMENT, CANCELLING})


def can(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check(current: str, target: str, *, order_id: str) -> None:
    if not can(current, target):
        raise FailedPreconditionError(
            f"Order {order_id} is {current} and cannot become {target}.",
            details={"order_id": order_id, "status": current, "wanted": target},
        )


def cancellable(status: str) -> bool:
    """The owner may cancel while pending or paid; staff "until fulfilled": the same statuses.
    An unpaid order becomes ``cancelling`` first (its PaymentIntent is closed at Stripe)."""
    return status in (PENDING_PAYMENT, PAID)
