"""Documents the payments domain owns."""

from typing import Any

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
    provider_ref: str | None  # the PaymentIntent id (None: closed before any intent was created)
    customer: str | None
    status: str  # requires_payment, requires_action, processing, succeeded, partially_refunded, refunded, canceled
    failure_reason: str | None  # the last declined attempt's reason (a decline is not final)
    failed_attempts: int = 0
    last_failure_time: Timestamp | None = None
    correlation_id: str
    # The checkout's trace (trace_id, span_id of the call that created it, sampled): the webhook and
    # reconciliation join it, so Stripe's events land in the checkout's trace.
    trace: dict[str, Any] | None = None
    stripe_event_ids: list[str] = []  # Stripe events applied to it: each is applied once
    stripe_state_time: int = 0  # `created` of the newest intent event applied: an older one never overwrites it
    amount_received: int | None = None
    charge_id: str | None = None
    succeeded_time: Timestamp | None = None
    canceled_time: Timestamp | None = None
    cancellation_reason: str | None = None
    amount_refunded: int = 0  # the charge's running refunded total
    refund_id: str | None = None  # our own refund
    refund_reason: str | None = None
    refunded_time: Timestamp | None = None
    # Stripe refused our refund for good (its code: charge_disputed); staff act on it (the dead letter
    # of the refund's delivery says why; replay it once the dispute is won).
    refund_refused: str | None = None
    refund_refused_time: Timestamp | None = None
    # Every refund of the charge seen so far and its latest Stripe status (requires_action,
    # pending, succeeded, failed, canceled): a status only moves forward, so a late or repeated
    # event never makes a failed refund succeeded again.
    refund_statuses: dict[str, str] = {}
    refund_failures: int = 0  # refunds that failed or were canceled: our next refund attempt takes a new key
    # Refund failures a refund request has ended on (its delivery a dead letter, never retried
    # automatically): while fewer than refund_failures, a request finds a failure nobody answered
    # and ends as a dead letter too; an admin's replay finds them equal and refunds again.
    refund_failures_ended: int = 0
    refund_failure_reason: str | None = None  # the last one's Stripe failure_reason (or "canceled")
    refund_failed_time: Timestamp | None = None
    # Staff must act (review_reason "refund_failed": a refund did not reach the customer). A later
    # refund of everything that is left clears it.
    needs_review: bool = False
    review_reason: str | None = None
    dispute_id: str | None = None
    dispute_status: str | None = None  # Stripe's: needs_response, under_review, won, lost, ...
    dispute_reason: str | None = None
    dispute_amount: int | None = None
    dispute_event_time: int = 0  # `created` of the newest dispute event applied: an older one never overwrites it
    anonymised: bool = False  # the account was deleted; kept for accounting
    created_time: Timestamp
    updated_time: Timestamp


@collection("stripe_customers/{uid}", read="admins", write="payments functions only")
class StripeCustomerDoc(Document):
    """The user's Stripe customer id, created once."""

    uid: str
    customer_id: str
    created_time: Timestamp
