"""Stripe on localstripe, as a FlutterFlow app's payment sheet would drive it."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import requests
import stripe

from testkit import harness


def stripe_client() -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_flowsuite_local", base_addresses={"api": harness.need("FLOWSUITE_STRIPE_URL")},
                               http_client=stripe.RequestsClient(timeout=30), max_network_retries=1)


def confirm(intent_id: str, card: str = "4242424242424242"):
    """Attach a card and confirm (localstripe: attach with modify, then confirm)."""
    client = stripe_client()
    pm = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    client.v1.payment_intents.update(intent_id, params={"payment_method": pm.id})
    try:
        return client.v1.payment_intents.confirm(intent_id)
    except stripe.CardError as err:
        return err


def sign(payload: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
    secret = secret or os.environ.get("FLOWSUITE_STRIPE_WEBHOOK_SECRET", "whsec_flowsuite_local")
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def post_webhook(payload: str, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return requests.post(f"{harness.functions_url()}/payments_stripe_webhook", data=payload.encode(),
                         headers=headers, timeout=30)


def event(kind: str, obj: dict, event_id: str | None = None) -> str:
    return json.dumps({"id": event_id or f"evt_{int(time.time() * 1e6)}", "object": "event", "type": kind,
                       "created": int(time.time()), "data": {"object": obj}})
