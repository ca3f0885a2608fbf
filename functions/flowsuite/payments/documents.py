"""Documents the payments domain owns."""

from __future__ import annotations

from flowsuite.core.documents import DocRef, Document, Timestamp, collection


@collection("payments/{payment_id}", read="the owner (uid or user_ref), staff", write="payments functions only")
class PaymentDoc(Document):
    """A payment of an order through Stripe."""

    payment_id: str
    uid: str
    user_ref: DocRef
    order_id: str
    order_ref: DocRef
    amount: int
    currency: str
    provider: str
    provider_ref: str
    customer: str | None
    status: str
    failure_reason: str | None
    correlation_id: str
    stripe_event_ids: list[str] = []  # Stripe events applied to it: each is applied once
    created_time: Timestamp
    updated_time: Timestamp


@collection("stripe_customers/{uid}", read="admins", write="payments functions only")
class StripeCustomerDoc(Document):
    """The user's Stripe customer id, created once."""

    uid: str
    customer_id: str
    created_time: Timestamp
