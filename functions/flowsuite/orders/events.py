"""Events the orders domain publishes: the contracts live in ``flowsuite.contracts.orders``,
where subscribers in other domains import them from."""

from flowsuite.contracts.orders import (
    Line,
    OrderCancelled,
    OrderCancelRequested,
    OrderFulfilled,
    OrderNeedsReview,
    OrderPaid,
    OrderPaymentRejected,
    OrderPlaced,
    OrderRefunded,
)

__all__ = [
    "Line",
    "OrderPlaced",
    "OrderPaid",
    "OrderCancelled",
    "OrderCancelRequested",
    "OrderPaymentRejected",
    "OrderRefunded",
    "OrderFulfilled",
    "OrderNeedsReview",
]
