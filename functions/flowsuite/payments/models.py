"""Requests and answers of the payments callables."""

from __future__ import annotations

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
    hours: int = Field(default=config.RECONCILE_HOURS, ge=1, le=24 * 30,
                       description="Look at PaymentIntents created in the last this many hours.")


class ReconciliationAnswer(Response):
    checked: int
    not_ours: int
    applied: int
    unchanged: int
    errors: int
