"""Orders document triggers (``orders_on_*``): an instance serving one imports this module alone
(``registry.own_module``); ``flowsuite.orders.functions`` re-exports them."""

from __future__ import annotations

from flowsuite.contracts.payments import (
    PaymentCanceled,
    PaymentDisputed,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentSucceeded,
)
from flowsuite.core import bus, clients
from flowsuite.core.erasure import eraser
from flowsuite.orders import service

__all__ = [
    "orders_on_payment_succeeded",
    "orders_on_payment_canceled",
    "orders_on_payment_refunded",
    "orders_on_payment_disputed",
    "orders_on_payment_refund_failed",
    "orders_on_user_deleted",
]


@bus.subscriber(PaymentSucceeded)
def orders_on_payment_succeeded(event, txn) -> None:
    """payment.succeeded -> the order is paid (order.paid), or the payment rejected (order.payment_rejected)."""
    service.on_payment_succeeded(clients.firestore(), txn, event.data)


@bus.subscriber(PaymentCanceled)
def orders_on_payment_canceled(event, txn) -> None:
    """payment.canceled -> the unpaid order is cancelled and its stock released (order.cancelled)."""
    service.on_payment_canceled(clients.firestore(), txn, event.data)


@bus.subscriber(PaymentRefunded)
def orders_on_payment_refunded(event, txn) -> None:
    """payment.refunded -> a full refund refunds the order (order.refunded); a partial one is recorded."""
    service.on_payment_refunded(clients.firestore(), txn, event.data, event.envelope.time)


@bus.subscriber(PaymentDisputed)
def orders_on_payment_disputed(event, txn) -> None:
    """payment.disputed -> the order shows the dispute and its state."""
    service.on_payment_disputed(clients.firestore(), txn, event.data)


@bus.subscriber(PaymentRefundFailed)
def orders_on_payment_refund_failed(event, txn) -> None:
    """payment.refund_failed -> the order is flagged for staff (needs_review: refund_failed) and shows
    what is refunded of it now."""
    service.on_payment_refund_failed(clients.firestore(), txn, event.data, event.envelope.time)


@eraser(collections=(service.ORDERS, service.HOLDS))
def orders_on_user_deleted(db, uid: str) -> None:
    service.erase(db, uid)
