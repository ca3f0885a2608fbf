"""Payments document triggers (``payments_on_*``): an instance serving one imports this module
alone (``registry.own_module``); ``flowsuite.payments.functions`` re-exports them."""

from __future__ import annotations

from flowsuite.contracts.orders import OrderCancelled, OrderCancelRequested, OrderPaymentRejected
from flowsuite.core import bus, clients
from flowsuite.core.erasure import eraser
from flowsuite.payments import config, service

__all__ = [
    "payments_on_order_cancelled",
    "payments_on_order_cancel_requested",
    "payments_on_order_payment_rejected",
    "payments_on_user_deleted",
]


@bus.subscriber(OrderCancelled, transactional=False, secrets=config.SECRETS)
def payments_on_order_cancelled(event) -> None:
    """order.cancelled after payment -> refund through Stripe (payment.refunded)."""
    service.refund_cancelled_order(clients.firestore(), clients.stripe(), order_id=event.data.order_id,
                                   was_paid=event.data.was_paid)


@bus.subscriber(OrderCancelRequested, transactional=False, secrets=config.SECRETS)
def payments_on_order_cancel_requested(event) -> None:
    """order.cancel_requested -> the PaymentIntent is closed at Stripe (payment.canceled), or, if it
    already succeeded, the payment succeeds and the order follows it."""
    d = event.data
    service.close_for_cancel(clients.firestore(), clients.stripe(), order_id=d.order_id, uid=d.uid, reason=d.reason,
                             correlation_id=event.correlation_id)


@bus.subscriber(OrderPaymentRejected, transactional=False, secrets=config.SECRETS)
def payments_on_order_payment_rejected(event) -> None:
    """order.payment_rejected -> a success for an order that can no longer be paid is refunded."""
    service.refund_in_full(clients.firestore(), clients.stripe(), payment_id=event.data.payment_id,
                           reason=f"order_not_payable:{event.data.reason}")


@eraser(collections=(service.PAYMENTS, service.CUSTOMERS), secrets=config.SECRETS)
def payments_on_user_deleted(db, uid: str) -> None:
    service.erase(db, clients.stripe(), uid)
