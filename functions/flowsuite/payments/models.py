"""Requests and answers of the payments callables."""

from pydantic import Field

from flowsuite.core.models import DocId, IdempotentRequest, Request, Response
from flowsuite.payments import config


class CreateIntent(IdempotentRequest):
    order_id: DocId


class IntentAnswer(Response):
    payment_id: str
    client_secret: str
    amount: int
    currency: str
    customer: str
    ephemeral_key: str = Field(description="The customer's ephemeral key secret (PaymentSheet's customerEphemeralKeySecret).")


class RunReconciliation(Request):
    minutes: int = Field(default=config.RECONCILE_MINUTES, ge=1, le=30 * 24 * 60,
                         description="Look at PaymentIntents created in the last this many minutes.")


class ReconciliationAnswer(Response):
    checked: int
    not_ours: int
    applied: int
    unchanged: int
    unknown: int = Field(description="Intents naming a payment that was never recorded (its creation crashed).")
    errors: int
    refund_failures_checked: int = Field(
        default=0, description="Refunds Stripe says failed or were canceled in its refund events of the last "
                               "REFUND_EVENTS_DAYS days (a refund can fail weeks after it was made).")
    refund_failures_applied: int = Field(
        default=0, description="Of those, failures the webhooks missed, applied now (the payment flagged).")
