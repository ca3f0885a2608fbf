"""Payments' parameters and secrets (Secret Manager in production, functions/.secret.local locally)."""

from __future__ import annotations

import os

from firebase_functions import params

STRIPE_SECRET_KEY = params.SecretParam("STRIPE_SECRET_KEY", description="Stripe secret API key (sk_...).")
STRIPE_WEBHOOK_SECRET = params.SecretParam(
    "STRIPE_WEBHOOK_SECRET", description="Signing secret of the Stripe webhook endpoint (whsec_...)."
)
STRIPE_API_BASE = params.StringParam(
    "STRIPE_API_BASE", default="https://api.stripe.com",
    description="Stripe API base URL; localstripe locally.",
)
SECRETS = [STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET]
WEBHOOK_TOLERANCE_SECONDS = 300
WEBHOOK_MAX_BODY_BYTES = 256 * 1024


def api_base() -> str:
    return os.environ.get(STRIPE_API_BASE.name) or STRIPE_API_BASE.default
RECONCILE_MINUTES = 72 * 60  # Stripe retries a webhook for up to three days
# A refund can fail days or weeks after it was made (long after its intent left the window
# above): reconciliation also reads Stripe's refund events of this many days (Stripe keeps
# events for 30) and applies the failures and cancellations the webhooks missed.
REFUND_EVENTS_DAYS = 30
