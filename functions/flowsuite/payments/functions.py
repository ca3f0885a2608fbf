"""Payments functions: thin triggers over ``flowsuite.payments.service``."""

from __future__ import annotations

import json

from firebase_functions import https_fn

from flowsuite.core import bus, clients, log, metering, options
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.core.errors import RetryLaterError
from flowsuite.identity.erasure import eraser
from flowsuite.orders.events import OrderCancelled
from flowsuite.payments import config, models, service

__all__ = [
    "payments_create_intent",
    "payments_stripe_webhook",
    "payments_on_order_cancelled",
    "payments_on_user_deleted",
]

options.apply()


@callable_function(request=models.CreateIntent, response=models.IntentAnswer, idempotent=True,
                   secrets=config.SECRETS)
def payments_create_intent(ctx: CallContext, req: models.CreateIntent) -> models.IntentAnswer:
    """Creates (once) the Stripe PaymentIntent for your pending order; the amount comes from the order."""
    return models.IntentAnswer(**service.create_intent(
        clients.firestore(), clients.stripe(), uid=ctx.require_uid(), email=ctx.email,
        order_id=req.order_id, correlation_id=ctx.correlation_id,
    ))


def _answer(status: int, body: dict) -> https_fn.Response:
    return https_fn.Response(json.dumps(body), status=status, mimetype="application/json")


@https_fn.on_request(secrets=config.SECRETS)
def payments_stripe_webhook(req: https_fn.Request) -> https_fn.Response:
    """Stripe's webhook: verified, applied once per Stripe event, 5xx on a transient failure."""
    import stripe  # noqa: PLC0415 - heavy; only this domain pays for it

    with log.bind(domain="payments", function="payments_stripe_webhook"), metering.metered() as meter:
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
                applied = service.handle_stripe_event(clients.firestore(), event)
            except RetryLaterError as exc:
                log.warning("webhook deferred; Stripe will retry", error=str(exc), **meter.fields())
                return _answer(503, {"error": "retry later"})
            except Exception as exc:  # noqa: BLE001 - Stripe must retry, never a 200 on failure
                log.error("webhook failed", error=f"{type(exc).__name__}: {exc}", **meter.fields())
                return _answer(500, {"error": "internal"})
            with log.bind(correlation_id=applied.correlation_id, payment_id=applied.payment_id):
                log.info("webhook applied", outcome=applied.outcome, **meter.fields())
            return _answer(200, {"received": True, "outcome": applied.outcome})


@bus.subscriber(OrderCancelled, transactional=False, secrets=config.SECRETS)
def payments_on_order_cancelled(event) -> None:
    """order.cancelled after payment -> refund through Stripe (payment.refunded)."""
    service.refund_cancelled_order(clients.firestore(), clients.stripe(), order_id=event.data.order_id,
                                   was_paid=event.data.was_paid)


@eraser(collections=(service.PAYMENTS, service.CUSTOMERS), secrets=config.SECRETS)
def payments_on_user_deleted(db, uid: str) -> None:
    service.erase(db, clients.stripe(), uid)
