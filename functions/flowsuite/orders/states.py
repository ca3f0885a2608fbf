"""The order state machine. Pure: every transition is checked here."""

from __future__ import annotations

from flowsuite.core.errors import FailedPreconditionError

PENDING_PAYMENT = "pending_payment"
PAID = "paid"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"
REFUNDED = "refunded"
STATUSES = (PENDING_PAYMENT, PAID, FULFILLED, CANCELLED, REFUNDED)

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_PAYMENT: frozenset({PAID, CANCELLED}),
    PAID: frozenset({FULFILLED, CANCELLED}),
    CANCELLED: frozenset({REFUNDED}),
    FULFILLED: frozenset(),
    REFUNDED: frozenset(),
}

# Statuses whose stock is still reserved (cancelling them releases it).
HOLDS_STOCK = frozenset({PENDING_PAYMENT, PAID})


def can(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check(current: str, target: str, *, order_id: str) -> None:
    if not can(current, target):
        raise FailedPreconditionError(
            f"Order {order_id} is {current} and cannot become {target}.",
            details={"order_id": order_id, "status": current, "wanted": target},
        )


def cancellable(status: str) -> bool:
    """The owner may cancel while pending or paid; staff "until fulfilled": the same statuses."""
    return can(status, CANCELLED)
