"""Payments functions: thin triggers over ``flowsuite.payments.service``."""

from __future__ import annotations

import datetime as dt
import json

from firebase_functions import https_fn, scheduler_fn

from flowsuite.contracts.orders import OrderCancelled, OrderCancelRequested, OrderPaymentRejected
from flowsuite.core import bus, clients, clock, log, metering, options, settings, tracing
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.core.erasure import eraser
from flowsuite.core.errors import RetryLaterError
from flowsuite.payments import config, models, service

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


def _answer(status: int, body: dict) -> https_fn.Response:
    return https_fn.Response(json.dumps(body), status=status, mimetype="application/json")


@options.trigger(https_fn.on_request, secrets=config.SECRETS)
def payments_stripe_webhook(req: https_fn.Request) -> https_fn.Response:
    """Stripe's webhook: verified, applied once per Stripe event, 5xx on a transient failure."""
    import stripe  # noqa: PLC0415 - heavy; only this domain pays for it

    # A span in the trace of Stripe's request (Google's front end names one), which joins the
    # checkout's trace once the event's payment is known (``tracing.join``).
    with log.bind(domain="payments", function="payments_stripe_webhook"), metering.metered() as meter, \
            tracing.span("payments_stripe_webhook", parent=tracing.from_headers(req.headers), entry=True,
                         joins_documents=True, kind="webhook") as span:
        if req.method != "POST":
            return _answer(405, {"error": "POST only"})
        if (req.content_length or 0) > config.WEBHOOK_MAX_BODY_BYTES:
            return _answer(413, {"error": "body too large"})
        payload = req.get_data(cache=False)
        if len(payload) > config.WEBHOOK_MAX_BODY_BYTES:
            return _answer(413, {"error": "body too large"})
        signature = req.headers.get("Stripe-Signature")
        if not signature:
            return _answer(400, {"error": "missing Stripe-Signature"})
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8"), signature, config.STRIPE_WEBHOOK_SECRET.value,
                tolerance=config.WEBHOOK_TOLERANCE_SECONDS,
            )
            event = json.loads(payload)
            event_id, kind = str(event["id"]), str(event["type"])
        except (stripe.SignatureVerificationError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            log.warning("webhook refused", error=str(exc)[:200])
            return _answer(400, {"error": "invalid signature or payload"})
        with log.bind(stripe_event_id=event_id, stripe_event_type=kind):
            try:
                applied = service.handle_stripe_event(clients.firestore(), event, project=settings.project_id())
            except RetryLaterError as exc:
                log.warning("webhook deferred; Stripe will retry", error=str(exc), **meter.fields())
                return _answer(503, {"error": "retry later"})
            except Exception as exc:  # noqa: BLE001 - Stripe must retry, never a 200 on failure
                span.status = "error"
                log.report("webhook failed", exc, **meter.fields())
                return _answer(500, {"error": "internal"})
            span.attributes["correlation_id"] = applied.correlation_id  # its span line names the checkout
            with log.bind(correlation_id=applied.correlation_id, payment_id=applied.payment_id):
                log.info("webhook applied", outcome=applied.outcome, **meter.fields())
            return _answer(200, {"received": True, "outcome": applied.outcome})


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
