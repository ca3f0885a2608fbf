"""Requests and answers of the payments callables."""

from __future__ import annotations

from flowsuite.core.models import DocId, IdempotentRequest, Response


class CreateIntent(IdempotentRequest):
    order_id: DocId


class IntentAnswer(Response):
    payment_id: str
    client_secret: str
    amount: int
    currency: str
    customer: str
