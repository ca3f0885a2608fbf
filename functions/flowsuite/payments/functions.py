"""Payments functions: thin triggers over ``flowsuite.payments.service``."""

from __future__ import annotations

import datetime as dt

from firebase_functions import scheduler_fn

from flowsuite.core import clients, clock, log, options, settings
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.payments import config, models, service, triggers
from flowsuite.payments.triggers import *  # noqa: F403 - its document triggers, served alone (registry.own_module)
from flowsuite.payments.webhook import payments_stripe_webhook  # a module of its own (registry.OWN_MODULES)

__all__ = [
    "payments_create_intent",
    "payments_stripe_webhook",
    *triggers.__all__,
    "payments_run_reconciliation",
    "payments_reconcile_stripe",
]


@callable_function(request=models.CreateIntent, response=models.IntentAnswer, idempotent=True,
                   secrets=config.SECRETS, min_instances=settings.CHECKOUT_MIN_INSTANCES)
def payments_create_intent(ctx: CallContext, req: models.CreateIntent) -> models.IntentAnswer:
    """Creates (once) the Stripe PaymentIntent for your pending order; the amount comes from the order.
    Answers what flutter_stripe's PaymentSheet takes: the intent's client secret, the customer and an
    ephemeral key. After a declined card, call it again: the same intent stays payable."""
    return models.IntentAnswer(**service.create_intent(
        clients.firestore(), clients.stripe(), uid=ctx.require_uid(), email=ctx.email,
        order_id=req.order_id, correlation_id=ctx.correlation_id, project=settings.project_id(),
    ))


def _reconcile(minutes: int) -> dict[str, int]:
    now = clock.utcnow()
    return service.reconcile_with_stripe(clients.firestore(), clients.stripe(),
                                         since=now - dt.timedelta(minutes=minutes), project=settings.project_id(),
                                         refunds_since=now - dt.timedelta(days=config.REFUND_EVENTS_DAYS))


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
