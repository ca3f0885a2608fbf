"""The Stripe webhook, in a module of its own: an instance serving it imports this module
alone (``registry.OWN_MODULES``), not the domain's other functions with their request models,
the bus and the events they subscribe to; ``flowsuite.payments.functions`` re-exports it."""

from __future__ import annotations

import json

from firebase_functions import https_fn

from flowsuite.core import clients, log, metering, options, settings, tracing
from flowsuite.core.errors import RetryLaterError
from flowsuite.payments import config, service

__all__ = ["payments_stripe_webhook"]


def _answer(status: int, body: dict) -> https_fn.Response:
    return https_fn.Response(json.dumps(body), status=status, mimetype="application/json")


@options.trigger(https_fn.on_request, secrets=config.SECRETS, min_instances=settings.CHECKOUT_MIN_INSTANCES)
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
                applied = service.handle_stripe_event(clients.firestore(), event, project=settings.project_id(),
                                                       stripe=clients.stripe())
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
