"""Payments functions: thin triggers over ``flowsuite.payments.service``."""

from __future__ import annotations

import datetime as dt

from firebase_functions import scheduler_fn

from flowsuite.contracts.orders import OrderCancelled, OrderCancelRequested, OrderPaymentRejected
from flowsuite.core import bus, clients, clock, log, options, settings
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.core.erasure import eraser
from flowsuite.payments import config, models, service
from flowsuite.payments.webhook import payments_stripe_webhook  # a module of its own (registry.OWN_MODULES)

__all__ = [
    "payments_create_intent",
    "payments_stripe_webhook",
    "payments_on_order_cancelled",
    "payments_on_order_cancel_requested",
    "payments_on_order_payment_rejected",
    "payments_run_reconciliation",
    "payments_reconcile_stripe",
    "payments_on_user_deleted",
]


@callable_function(request=models.CreateIntent, response=models.IntentAnswer, idempotent=True,
                   secrets=config.SECRETS)
def payments_create_intent(ctx: CallContext, req: models.CreateIntent) -> models.IntentAnswer:
    """Creates (once) the Stripe PaymentIntent for your pending order; the amount comes from the order.
    Answers what flutter_stripe's PaymentSheet takes: the intent's client secret, the customer and an
    ephemeral key. After a declined card, call it again: the same intent stays payable."""
    return models.IntentAnswer(**service.create_intent(
        clients.firestore(), clients.stripe(), uid=ctx.require_uid(), email=ctx.email,
        order_id=req.order_id, correlation_id=ctx.correlation_id, project=settings.project_id(),
    ))


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


def _reconcile(minutes: int) -> dict[str, int]:
    return service.reconcile_with_stripe(clients.firestore(), clients.stripe(),
                                         since=clock.utcnow() - dt.timedelta(minutes=minutes),
                                         project=settings.project_id())


@callable_function(request=models.RunReconciliation, response=models.ReconciliationAnswer, roles=("admin",),
                   secrets=config.SECRETS)
def payments_run_reconciliation(ctx: CallContext, req: models.RunReconciliation) -> models.ReconciliationAnswer:
    """Applies what Stripe knows and the webhooks missed, for intents created in the last `minutes` (admin)."""
    return models.ReconciliationAnswer(**_reconcile(req.minutes))


@options.trigger(scheduler_fn.on_schedule, schedule="every 30 minutes", secrets=config.SECRETS)
def payments_reconcile_stripe(event: scheduler_fn.ScheduledEvent) -> None:
    """Every 30 minutes: the last three days of PaymentIntents (Stripe retries a webhook for three days)."""
    with log.bind(domain="payments", function="payments_reconcile_stripe"):
        log.info("stripe reconciliation finished", **_reconcile(config.RECONCILE_MINUTES))


@eraser(collections=(service.PAYMENTS, service.CUSTOMERS), secrets=config.SECRETS)
def payments_on_user_deleted(db, uid: str) -> None:
    service.erase(db, clients.stripe(), uid)
