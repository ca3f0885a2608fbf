"""Payments service code: intents, the Stripe webhook, refunds, erasure.

Stripe is reached through a ``StripeClient`` passed in; every call that creates
something carries a Stripe idempotency key and runs under ``effects.once`` so a
retry neither charges twice nor loses the payment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from typing import Any, NoReturn

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.contracts.disputes import DISPUTE_CLOSED, dispute_step_applies
from flowsuite.core import clock, effects, events, faults, ids, log, settings, tracing
from flowsuite.core.accounts import DELETED_USER, USERS, account_gone_in
from flowsuite.core.errors import (
    MANUAL_REPLAY,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
    RetryLaterError,
    caused_by,
)
from flowsuite.core.kernel_documents import EffectDoc
from flowsuite.payments.documents import PaymentDoc, StripeCustomerDoc
from flowsuite.payments.events import (
    PaymentCanceled,
    PaymentDisputed,
    PaymentFailed,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentSucceeded,
)

PAYMENTS = "payments"
CUSTOMERS = "stripe_customers"
ORDERS = "orders"  # read only, as docs/collections.md allows

REQUIRES_PAYMENT, REQUIRES_ACTION, PROCESSING = "requires_payment", "requires_action", "processing"
SUCCEEDED, PARTIALLY_REFUNDED, REFUNDED, CANCELED = "succeeded", "partially_refunded", "refunded", "canceled"
PAYABLE = frozenset({REQUIRES_PAYMENT, REQUIRES_ACTION, PROCESSING})  # the intent can still be paid
PAID_STATES = frozenset({SUCCEEDED, PARTIALLY_REFUNDED, REFUNDED})


def payment_id_for(order_id: str) -> str:
    return f"pay_{order_id}"


# ---- intents ---------------------------------------------------------------------

def customer_for(db, stripe, uid: str, email: str | None) -> str:
    """The user's Stripe customer: created once, then reused."""
    ref = db.collection(CUSTOMERS).document(uid)
    snap = ref.get()
    if snap.exists:
        return snap.get("customer_id")
    result = effects.once(
        f"stripe-customer-{ids.person_key(uid)}",
        lambda: {"id": stripe.v1.customers.create(
            params={"email": email, "metadata": {"uid": uid}} if email else {"metadata": {"uid": uid}},
            options={"idempotency_key": f"customer-{uid}"},
        ).id},
        meta={"uid": uid, "kind": "stripe_customer"}, db=db,
    )
    ref.set(StripeCustomerDoc.fields(uid=uid, customer_id=result["id"], created_time=gcf.SERVER_TIMESTAMP), merge=True)
    return result["id"]


def create_intent(db, stripe, *, uid: str, email: str | None, order_id: str, correlation_id: str,
                  project: str | None = None) -> dict[str, Any]:
    """The order's one PaymentIntent (created once; a decline leaves it payable, so every later
    call answers the same intent) and what flutter_stripe's PaymentSheet needs for a customer
    with saved cards: the customer and a fresh ephemeral key. An account deleted while the call
    runs gets no payment and no open intent: the call is refused (``account_deleted``)."""
    order_snap = db.collection(ORDERS).document(order_id).get()
    if not order_snap.exists:
        raise NotFoundError(f"No order {order_id}.", details={"order_id": order_id})
    order = order_snap.to_dict()
    if order.get("uid") != uid:
        raise PermissionDeniedError("This is not your order.", details={"order_id": order_id})
    if order.get("status") != "pending_payment":
        raise FailedPreconditionError(
            f"Order {order_id} is {order.get('status')}, not pending payment.",
            details={"order_id": order_id, "status": order.get("status")},
        )
    customer = customer_for(db, stripe, uid, email)
    payment_id = payment_id_for(order_id)
    amount, currency = int(order["total"]), order["currency"]

    intent = effects.once(
        f"stripe-intent-{payment_id}",
        lambda: _create_intent(stripe, payment_id, order_id, uid, amount, currency, customer, project),
        meta={"uid": uid, "kind": "stripe_payment_intent", "payment_id": payment_id}, db=db,
    )
    faults.maybe_fail("payments.after_stripe_intent", db=db)  # a crash between Stripe and Firestore
    ref, user_ref = db.collection(PAYMENTS).document(payment_id), db.collection(USERS).document(uid)
    now = clock.utcnow()

    @gcf.transactional
    def record(txn) -> bool:
        """Creates the payment while the account lives; whether it lived. The profile is read in
        this transaction (identity marks it ``deleting`` in the one that publishes
        identity.user_deleted), so a payment created here was written before that event and
        payments' eraser finds it. Created once: a retry after a crash finds it (the payment is
        not read: the commit fails with ALREADY_EXISTS)."""
        if account_gone_in(txn, db, uid):
            return False
        txn.create(ref, PaymentDoc.new({
            "payment_id": payment_id,
            "uid": uid,
            "user_ref": user_ref,
            "order_id": order_id,
            "order_ref": db.collection(ORDERS).document(order_id),
            "amount": amount,
            "currency": currency,
            "provider": "stripe",
            "provider_ref": intent["id"],
            "customer": customer,
            "status": REQUIRES_PAYMENT,
            "failure_reason": None,
            "failed_attempts": 0,
            "amount_refunded": 0,
            "correlation_id": order.get("correlation_id") or correlation_id,
            "trace": tracing.stored(),  # the checkout's trace: Stripe's events join it
            "created_time": now,
            "updated_time": now,
        }))
        return True

    try:
        lives = record(db.transaction())
    except Exception as exc:
        if not created_meanwhile(exc):
            raise
        _close_if_cancelled(db, stripe, ref, intent["id"])  # a repeat: the same intent, unless it was closed
    else:
        if not lives:
            _refuse_for_deleted_account(db, stripe, ref, uid, intent["id"])
    return {"payment_id": payment_id, "client_secret": intent["client_secret"], "amount": amount,
            "currency": currency, "customer": customer, "ephemeral_key": _ephemeral_key(stripe, customer)}


def created_meanwhile(exc: BaseException) -> bool:
    """Whether a transaction that creates a document failed because the document exists
    (ALREADY_EXISTS). The SDK's rollback afterwards may raise in its stead, with it as
    context. Pure."""
    return caused_by(exc, AlreadyExists)


def _adopt(db, ref, intent_id: str) -> dict | None:
    """The payment recorded for the order, after giving this intent to a closed payment recorded
    with none (the order was cancelled while its intent was being created); None if none is."""

    @gcf.transactional
    def adopt(txn) -> dict | None:
        snap = ref.get(transaction=txn)
        if not snap.exists:
            return None
        payment = snap.to_dict()
        if payment.get("provider_ref") is None:
            txn.update(ref, PaymentDoc.fields(provider_ref=intent_id, updated_time=clock.utcnow()))
        return payment

    return adopt(db.transaction())


def _cancel_once(db, stripe, payment_id: str, intent_id: str) -> dict[str, Any]:
    """Closes the payment's intent at Stripe once (the key close_for_cancel uses too)."""
    return effects.once(f"stripe-cancel-{payment_id}", lambda: _cancel_intent(stripe, intent_id, "requested_by_customer"),
                        meta={"kind": "stripe_cancel_intent", "payment_id": payment_id}, db=db)


def _close_if_cancelled(db, stripe, ref, intent_id: str) -> None:
    """The order was cancelled while its intent was being created (a closed payment with no
    intent was recorded): the new intent is closed too, and the caller told."""
    payment = _adopt(db, ref, intent_id)
    if payment is None or payment.get("provider_ref") not in (None, intent_id) or payment["status"] != CANCELED:
        return
    _cancel_once(db, stripe, ref.id, intent_id)
    raise FailedPreconditionError(f"Order {payment['order_id']} was cancelled.",
                                  details={"order_id": payment["order_id"], "status": "cancelled"})


def closes_refused_intent(payment: dict[str, Any] | None, intent_id: str) -> bool:
    """Whether a call refused for a deleted account closes the intent it got at Stripe: when no
    payment is recorded, or the recorded one is this intent's (or a closed one with none) and
    was not paid (a paid order is staff's to fulfil or refund). Pure."""
    if payment is None:
        return True
    return payment.get("provider_ref") in (None, intent_id) and payment.get("status") not in PAID_STATES


def _refuse_for_deleted_account(db, stripe, ref, uid: str, intent_id: str) -> NoReturn:
    """The account was deleted while this call ran (its profile, read where the payment would
    have been created, is gone or ``deleting``), so payments' eraser may have run already and
    would never see what the call made. The intent is closed at Stripe (given to the order's
    closed payment, if its cancel request recorded one), payments' eraser runs again for what
    the call made before (the Stripe customer, ``stripe_customers/{uid}``, effect records
    naming the user; it is idempotent), and the caller is refused. No payment names the user."""
    try:
        if closes_refused_intent(_adopt(db, ref, intent_id), intent_id):
            _cancel_once(db, stripe, ref.id, intent_id)
    except RetryLaterError:  # another attempt holds its cancellation, or Stripe is settling a payment
        log.info("the intent is left to the order's cancellation (orders' eraser requests it)", payment_id=ref.id)
    try:
        erase(db, stripe, uid)
    except RetryLaterError:
        # Payments' eraser holds the Stripe customer's deletion right now: it deletes the
        # customer's record and unlinks the effect records after it (retried by the bus if it dies).
        log.info("payments' eraser is running: it finishes the erasure", payment_id=ref.id)
    log.warning("a call for an account deleted meanwhile was refused and its data erased", payment_id=ref.id)
    raise PermissionDeniedError("This account was deleted.", details={"reason": "account_deleted"})


def _ephemeral_key(stripe, customer: str) -> str:
    """A short-lived key that lets the PaymentSheet show the customer's saved cards. Stripe
    requires an explicit API version for it: the SDK sends its pinned one on every request."""
    return stripe.v1.ephemeral_keys.create(params={"customer": customer}).secret


def _create_intent(stripe, payment_id, order_id, uid, amount, currency, customer, project) -> dict[str, str]:
    metadata = {"flowsuite_payment_id": payment_id, "order_id": order_id, "uid": uid}
    if project:
        metadata["flowsuite_project"] = project
    intent = stripe.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "payment_method_types": ["card"],
            "metadata": metadata,
        },
        options={"idempotency_key": f"intent-{payment_id}"},
    )
    return {"id": intent.id, "client_secret": intent.client_secret}


# ---- Stripe events: the webhook, the cancel answer, reconciliation ----------------

INTENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.processing",
                 "payment_intent.requires_action", "payment_intent.canceled")
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")
# A refund's status changed (Stripe sends charge.refund.updated; refund.updated and refund.failed
# say the same of the same refund, and are applied alike if an endpoint is set up with them).
REFUND_EVENTS = ("charge.refund.updated", "refund.updated", "refund.failed")
# What the Stripe endpoint must be set up with (docs/production.md lists exactly these).
SUBSCRIBED = (*INTENT_EVENTS, "charge.refunded", "charge.refund.updated", *DISPUTE_EVENTS)
HANDLED = (*SUBSCRIBED, "refund.updated", "refund.failed")

# A refund's statuses, in the order Stripe moves them: requires_action -> pending -> succeeded,
# and failed or canceled from any of them (a refund that "succeeded" can still fail later).
REFUND_RANKS = {"requires_action": 0, "pending": 1, "succeeded": 2, "failed": 3, "canceled": 3}
REFUND_DONE = frozenset({"pending", "succeeded"})  # the money is on its way back: the payment is refunded
REFUND_FAILED = frozenset({"failed", "canceled"})  # final: the money went back to the merchant's balance
REVIEW_REFUND_FAILED = "refund_failed"


def refunds_in(payment: dict[str, Any], statuses: set[str] | frozenset[str]) -> list[str]:
    """The ids of the payment's refunds whose recorded status is one of ``statuses``, sorted. Pure."""
    return sorted(r for r, status in (payment.get("refund_statuses") or {}).items() if status in statuses)


def refund_status_advances(recorded: str | None, reported: str) -> bool:
    """Whether a refund's status reported now moves it on from the one recorded: only forward,
    and never out of failed or canceled (a late ``succeeded`` never undoes a failure). An
    unknown status never applies. Pure."""
    if reported not in REFUND_RANKS:
        return False
    if recorded is None:
        return True
    if recorded in REFUND_FAILED:
        return False
    return REFUND_RANKS[reported] > REFUND_RANKS.get(recorded, -1)


def refunded_after_failure(recorded: int, at_stripe: int) -> int:
    """A payment's refunded total once a refund failed: Stripe's charge total (it lowered it),
    never more than recorded (a refund we have not recorded yet is raised by its own
    charge.refunded, which tells the order). Pure."""
    return max(0, min(recorded, at_stripe))


def failure_changes_nothing(payment: dict[str, Any], total: int) -> bool:
    """Whether a refund that failed leaves the customer with everything back all the same: the
    charge is still refunded in full (another refund, e.g. staff's in the Dashboard once the
    failure's webhook was missed, covers it), so there is nothing to flag or alert. Pure."""
    amount = int(payment.get("amount_received") or payment.get("amount") or 0)
    return amount > 0 and total >= amount and total == int(payment.get("amount_refunded") or 0)


def refund_drift(recorded: int, at_stripe: int) -> str:
    """How the charge's refunded total at Stripe differs from the payment's: ``up`` (a refund
    we missed), ``down`` (a refund that failed or was canceled) or ``same``. Pure."""
    return "up" if at_stripe > recorded else "down" if at_stripe < recorded else "same"


def status_for_refunded(total: int, amount: int) -> str:
    """A paid payment's status for what is refunded of it. Pure."""
    if total <= 0:
        return SUCCEEDED
    return REFUNDED if total >= amount else PARTIALLY_REFUNDED


def refund_keys(payment_id: str, failures: int) -> tuple[str, str]:
    """(effect key, Stripe idempotency key) of our refund attempt after ``failures`` refunds of
    the payment failed: the same for every retry of one attempt (never two refunds), a new one
    after a failure (Stripe would answer a reused key with the failed refund). Pure."""
    if failures <= 0:
        return f"stripe-refund-{payment_id}", f"refund-{payment_id}"
    return f"stripe-refund-{payment_id}-retry{failures}", f"refund-{payment_id}-retry{failures}"


def refund_failure_unanswered(failures: int, ended: int) -> bool:
    """Whether a refund of the payment failed (or was canceled) at Stripe since a refund request
    last ended on a failure (``refund_failures_ended``): the request that finds it refunds
    nothing and ends as a dead letter. Staff either replay that dead letter (it then finds the
    failure answered, and refunds again under ``refund_keys``) or return the money another way
    and leave it. Never an automatic second refund. Pure."""
    return failures > ended


class UnknownPaymentError(RetryLaterError):
    """A Stripe event names one of our payments that is not recorded yet, or arrived before the
    state it builds on (a refund before its success): Stripe should retry."""


class _NeedsCharge(Exception):  # noqa: N818 - a signal, not an error: read the charge, apply again
    """A step needs the charge as Stripe holds it now (its refunded total after a refund failed);
    raised inside the transaction (nothing written), the charge is read and the event applied again.
    ``recorded``: the payment's ``refund_state`` when it was raised. The charge is read outside any
    transaction, so a refund recorded in between (its own event) would make it stale: the step
    then asks for it again (``charge_is_current``)."""

    def __init__(self, charge_id: str, recorded: list[int]):
        super().__init__(charge_id)
        self.charge_id, self.recorded = charge_id, recorded


READ_AGAINST = "_flowsuite_recorded_when_read"  # on a charge read for a step: the payment's refund_state then


def refund_state(payment: dict[str, Any]) -> list[int]:
    """What a charge read for a refund step is read against: the payment's refunded total and
    its refund failures (a failure recorded meanwhile may leave the total as it was). Pure."""
    return [int(payment.get("amount_refunded") or 0), int(payment.get("refund_failures") or 0)]


def charge_is_current(charge: dict[str, Any], payment: dict[str, Any]) -> bool:
    """Whether a charge read for a step still fits the payment: no refund step changed the payment
    since the step asked for it (else a refund or a failure recorded in between may be missing
    from the charge as read). Pure."""
    return charge.get(READ_AGAINST, refund_state(payment)) == refund_state(payment)


class RefundNotDoneError(RetryLaterError):
    """Stripe answered our refund with a status that returns no money (failed, canceled,
    requires_action): the attempt is not its effect's outcome. ``refund_in_full`` records it;
    one awaiting the customer (requires_action) is waited for (a retry later), one that failed
    or was canceled ends the request as a dead letter (``_end_on_refund_failure``)."""

    def __init__(self, refund: dict[str, Any]):
        super().__init__(f"refund {refund.get('id')} is {refund.get('status')}")
        self.refund = refund


@dataclasses.dataclass(frozen=True)
class Applied:
    """What a Stripe event did, and to which checkout (for the webhook's log line)."""

    outcome: str
    payment_id: str | None = None
    correlation_id: str | None = None


def _names_ours(metadata: dict[str, Any], project: str | None) -> str | None:
    """The payment id an object's metadata names, when it names one of this project's."""
    payment_id = metadata.get("flowsuite_payment_id")
    if not (isinstance(payment_id, str) and payment_id.startswith("pay_") and "/" not in payment_id):
        return None
    named_project = metadata.get("flowsuite_project")
    if project and named_project and named_project != project:
        return None  # another deployment (staging, a second app) sharing the Stripe account
    return payment_id


def _intent_of(kind: str, obj: dict[str, Any]) -> str:
    if kind.startswith("payment_intent."):
        return str(obj.get("id") or "")
    return str(obj.get("payment_intent") or "")


def payment_ref(db, kind: str, obj: dict[str, Any], project: str | None):
    """(the payment a Stripe object is about, whether its metadata names it). Named by the
    metadata we set on the PaymentIntent (copied to its charge), else found by intent or charge
    id (a dispute carries no metadata). None when it is not one of ours."""
    named = _names_ours(obj.get("metadata") or {}, project)
    if named:
        return db.collection(PAYMENTS).document(named), True
    for field, value in (("provider_ref", _intent_of(kind, obj)), ("charge_id", obj.get("charge"))):
        if value:
            query = db.collection(PAYMENTS).where(filter=FieldFilter(field, "==", value)).limit(1)
            found = list(query.stream())
            if found:
                return found[0].reference, False
    return None, False


def handle_stripe_event(db, event: dict[str, Any], *, project: str | None = None, stripe=None) -> Applied:
    """Applies one verified Stripe event once. Returns what happened.

    An event about an object that is not one of our payments answers ``not_ours`` (Stripe must
    get a 2xx, or it retries for days and disables the endpoint); only an event that names our
    payment which is not recorded yet raises ``UnknownPaymentError`` (retry). The payment is
    found before the transaction (a query inside one would lock far more than a document).
    ``stripe`` reads the charge where Stripe's word is needed (a refund that failed).
    """
    kind = event["type"]
    if kind not in HANDLED:
        return Applied("ignored")
    obj = event["data"]["object"]
    faults.maybe_fail("payments.webhook", db=db)  # a transient failure: Stripe must retry
    ref, named = payment_ref(db, kind, obj, project)
    if ref is None:
        return Applied("not_ours")
    applied = _apply_reading_charge(db, stripe, ref, event)
    if applied is None and named and _adopted_by_closed_payment(db, ref, _intent_of(kind, obj)):
        applied = _apply_reading_charge(db, stripe, ref, event)
    if applied is None:
        if named and kind not in REFUND_EVENTS:
            raise UnknownPaymentError(f"no payment recorded for {_intent_of(kind, obj)} yet")
        # A refund is made only of a payment recorded long before (paid): one whose payment is not
        # here belongs to another deployment sharing the Stripe account (a refund made before
        # refunds carried flowsuite_project), and a retry would never find it.
        return Applied("not_ours")
    return applied


def _adopted_by_closed_payment(db, ref, intent_id: str | None) -> bool:
    """The payment our metadata names was closed with no intent (the order's cancel request,
    or the account's deletion, came while payments_create_intent was creating this intent at
    Stripe, and that call never recorded it): it takes the intent, as a repeat of the call
    would (``_adopt``), so Stripe's events about it apply instead of being retried for days."""
    if not intent_id:
        return False
    payment = _adopt(db, ref, intent_id)
    return payment is not None and payment.get("provider_ref") is None


def _apply_reading_charge(db, stripe, ref, event: dict[str, Any]) -> Applied | None:
    """``apply_event``; when its step needs the charge as Stripe holds it now, it is read (outside
    any transaction) and the event applied again with it."""
    charge = None
    for _ in range(3):
        try:
            return apply_event(db, ref, event, charge=charge)
        except _NeedsCharge as need:
            if stripe is None:
                raise RetryLaterError(f"charge {need.charge_id} must be read from Stripe") from None
            charge = {**_plain(stripe.v1.charges.retrieve(need.charge_id)), READ_AGAINST: need.recorded}
    raise RetryLaterError(f"the refunds of {ref.id} kept changing while its charge was read")


def apply_event(db, ref, event: dict[str, Any], *, charge: dict[str, Any] | None = None) -> Applied | None:
    """One transaction: reads the payment, skips an event id it already applied (kept on the
    payment, ``stripe_event_ids``), and applies the event by the payment's state and the
    event's ``created`` (an older event never overwrites a newer state). None when the payment
    is missing or belongs to another intent. ``charge``: the charge as Stripe holds it now, for
    the refund steps (they raise ``_NeedsCharge`` when they need it and it is not given)."""
    event_id, kind, obj = str(event["id"]), event["type"], event["data"]["object"]
    intent_id = _intent_of(kind, obj)
    created = int(event.get("created") or 0)

    @gcf.transactional
    def apply(txn) -> Applied | _NeedsCharge | None:
        snap = ref.get(transaction=txn)
        payment = snap.to_dict() if snap.exists else None
        if payment is None or (intent_id and payment.get("provider_ref") != intent_id):
            return None
        tracing.join(tracing.from_stored(payment.get("trace")))  # the checkout's trace, and its events
        if event_id in (payment.get("stripe_event_ids") or []):
            return Applied("duplicate", ref.id, payment.get("correlation_id"))
        step = _STEPS[kind.rsplit(".", 1)[-1] if kind.startswith("payment_intent.") else kind]
        try:
            if kind in REFUND_STEPS:
                outcome = step(db, txn, ref, payment, obj, event_id, created, charge=charge)
            else:
                outcome = step(db, txn, ref, payment, obj, event_id, created)
        except _NeedsCharge as need:  # raised before any write: the transaction commits nothing
            return need
        return Applied(outcome, ref.id, payment.get("correlation_id"))

    with tracing.span("payments.apply_stripe_event", stripe_event_type=kind) as span:
        applied = apply(db.transaction())
        if isinstance(applied, Applied):  # the span line names its checkout, as the log lines do
            span.attributes["correlation_id"] = applied.correlation_id
    if isinstance(applied, _NeedsCharge):
        raise applied
    return applied


def _applied(event_id: str | None, **fields: Any) -> dict[str, Any]:
    """A payment's new state, and the Stripe event that caused it (applied once)."""
    seen = {"stripe_event_ids": gcf.ArrayUnion([event_id])} if event_id else {}
    return PaymentDoc.fields(fields, {"updated_time": clock.utcnow()}, seen)


def _newer(payment: dict, created: int) -> bool:
    return created >= int(payment.get("stripe_state_time") or 0)


def _publish(db, txn, ref, payment: dict, data) -> None:
    events.publish(txn, data, subject=f"{PAYMENTS}/{ref.id}", correlation_id=payment.get("correlation_id"), db=db)


def _ids(ref, payment: dict) -> dict[str, str]:
    return {"payment_id": ref.id, "order_id": payment["order_id"], "uid": payment["uid"]}


def _succeeded(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int) -> str:
    """Money moved: from any unpaid state (even one we closed) the payment succeeded, and orders
    decides whether it pays the order or is refunded."""
    if payment["status"] in PAID_STATES:
        return f"already_{payment['status']}"
    amount = int(obj.get("amount_received") or obj.get("amount") or payment["amount"])
    txn.update(ref, _applied(event_id, status=SUCCEEDED, succeeded_time=clock.utcnow(), amount_received=amount,
                             charge_id=obj.get("latest_charge"), stripe_state_time=max(created, 0)))
    _publish(db, txn, ref, payment, PaymentSucceeded(**_ids(ref, payment), amount=amount,
                                                     currency=obj.get("currency") or payment["currency"]))
    return SUCCEEDED


def _failed(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int) -> str:
    """A declined attempt: recorded and told, the order stays payable with the same intent."""
    if payment["status"] not in PAYABLE:
        return f"stale_{payment['status']}"
    error = obj.get("last_payment_error") or {}
    reason = str(error.get("decline_code") or error.get("code") or error.get("message") or "payment_failed")[:300]
    attempt = int(payment.get("failed_attempts") or 0) + 1
    fields = {"failed_attempts": attempt, "failure_reason": reason, "last_failure_time": clock.utcnow()}
    if _newer(payment, created):
        fields.update(status=REQUIRES_PAYMENT, stripe_state_time=created)
    txn.update(ref, _applied(event_id, **fields))
    _publish(db, txn, ref, payment, PaymentFailed(**_ids(ref, payment), reason=reason, attempt=attempt))
    return "attempt_failed"


def _in_flight(status: str):
    def step(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int) -> str:
        if payment["status"] not in PAYABLE or not _newer(payment, created):
            return f"stale_{payment['status']}"
        txn.update(ref, _applied(event_id, status=status, stripe_state_time=created))
        return status
    return step


def _canceled(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int) -> str:
    if payment["status"] == CANCELED:
        return "already_canceled"
    if payment["status"] not in PAYABLE:
        return f"stale_{payment['status']}"
    reason = str(obj.get("cancellation_reason") or "canceled_in_stripe")
    txn.update(ref, _applied(event_id, status=CANCELED, canceled_time=clock.utcnow(), cancellation_reason=reason,
                             stripe_state_time=created))
    _publish(db, txn, ref, payment, PaymentCanceled(**_ids(ref, payment), reason=reason))
    return CANCELED


def _charge_refunded(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int, *,
                     charge: dict | None = None) -> str:
    """A refund made anywhere (our own, or in the Stripe Dashboard): the charge's running total
    decides, so a late or repeated event never lowers it, and a partial refund stays partial.
    A refund is applied only after the payment's success (also to a payment we closed: its
    success comes, and comes first), so payment.succeeded is always published before any
    payment.refunded of a payment; orders relies on it. Once a refund of the payment failed,
    the event's copy of the charge may predate the failure (it still counts the failed
    refund): the charge as Stripe holds it now decides instead."""
    if payment["status"] not in PAID_STATES:
        raise UnknownPaymentError(f"a refund of {ref.id} arrived before its success")
    if int(payment.get("refund_failures") or 0) > 0 and (charge is None or not charge_is_current(charge, payment)):
        raise _NeedsCharge(str(obj.get("id") or payment.get("charge_id") or ""), refund_state(payment))
    source = charge or obj
    total = int(source.get("amount_refunded") or 0)
    before = int(payment.get("amount_refunded") or 0)
    if total <= before:
        return f"already_{payment['status']}"
    return _mark_refunded(db, txn, ref, payment, total, full=bool(source.get("refunded")) or total >= payment["amount"],
                          reason="refunded_in_stripe", event_id=event_id)


def _refund_changed(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int, *,
                    charge: dict | None = None) -> str:
    """A refund's status changed. Statuses only move forward (``refund_status_advances``): a late
    or repeated event changes nothing. A refund that failed or was canceled (even one that had
    succeeded) returned the money to the merchant: the payment's refunded total goes back to the
    charge's as Stripe holds it now (read from Stripe, never taken from the event), its status
    follows, the payment is flagged for staff and payment.refund_failed tells the order and the
    admins."""
    if payment["status"] in PAYABLE:
        raise UnknownPaymentError(f"a refund of {ref.id} arrived before its success")
    refund_id, status = str(obj.get("id") or ""), str(obj.get("status") or "")
    if not refund_id or "." in refund_id or "/" in refund_id:
        return "not_a_refund"
    recorded = (payment.get("refund_statuses") or {}).get(refund_id)
    if recorded == status:
        return f"already_refund_{status}"
    if not refund_status_advances(recorded, status):
        return f"stale_refund_{recorded}"
    fields: dict[str, Any] = {f"refund_statuses.{refund_id}": status}
    if status not in REFUND_FAILED:
        txn.update(ref, _applied(event_id, **fields))
        return f"refund_{status}"
    if charge is None or not charge_is_current(charge, payment):
        raise _NeedsCharge(str(obj.get("charge") or payment.get("charge_id") or ""), refund_state(payment))
    total = refunded_after_failure(int(payment.get("amount_refunded") or 0), int(charge.get("amount_refunded") or 0))
    reason = str(obj.get("failure_reason") or status)[:100]
    if failure_changes_nothing(payment, total):  # refunded in full all the same (staff refunded again)
        txn.update(ref, _applied(event_id, **fields))
        log.info("a refund failed, but the charge is refunded in full all the same: nothing to flag",
                 payment_id=ref.id, refund_id=refund_id, failure_reason=reason)
        return f"refund_{status}_covered"
    if payment["status"] in PAID_STATES:
        fields["status"] = status_for_refunded(total, int(payment.get("amount_received") or payment["amount"]))
    fields.update(amount_refunded=total, refund_failures=int(payment.get("refund_failures") or 0) + 1,
                  refund_failure_reason=reason, refund_failed_time=clock.utcnow(), needs_review=True,
                  review_reason=REVIEW_REFUND_FAILED)
    txn.update(ref, _applied(event_id, **fields))
    _publish(db, txn, ref, payment, PaymentRefundFailed(
        **_ids(ref, payment), refund_id=refund_id, status=status, reason=reason, amount=int(obj.get("amount") or 0),
        currency=str(obj.get("currency") or payment["currency"]), amount_refunded=total))
    log.warning("a refund did not reach the customer: the payment is flagged for staff", payment_id=ref.id,
                refund_id=refund_id, refund_status=status, failure_reason=reason, amount_refunded=total)
    return f"refund_{status}"


def _mark_refunded(db, txn, ref, payment: dict, total: int, *, full: bool, reason: str,
                   event_id: str | None = None, refund_id: str | None = None, refund_status: str | None = None) -> str:
    before = int(payment.get("amount_refunded") or 0)
    status = REFUNDED if full else PARTIALLY_REFUNDED
    fields = {"status": status, "amount_refunded": total, "refunded_time": clock.utcnow(),
              "refund_reason": payment.get("refund_reason") or reason}
    if refund_id:
        fields["refund_id"] = refund_id
        if refund_status and refund_status_advances((payment.get("refund_statuses") or {}).get(refund_id),
                                                    refund_status):
            fields[f"refund_statuses.{refund_id}"] = refund_status
    if full and payment.get("needs_review") and payment.get("review_reason") == REVIEW_REFUND_FAILED:
        fields["needs_review"] = False  # refunded again in full: the failure is behind it
    if payment.get("refund_refused"):
        fields["refund_refused"] = None  # refunded after all (a dispute won, then replayed)
    txn.update(ref, _applied(event_id, **fields))
    _publish(db, txn, ref, payment, PaymentRefunded(
        **_ids(ref, payment), amount=total - before, currency=payment["currency"], amount_refunded=total,
        full=full, reason=reason))
    return status


def _dispute(db, txn, ref, payment: dict, obj: dict, event_id: str, created: int) -> str:
    """A dispute event, applied only when newer than the newest applied (its Stripe ``created``,
    kept as ``dispute_event_time``): a late older one never steps the status back nor alerts
    admins again."""
    status = str(obj.get("status") or "needs_response")
    closed = status in DISPUTE_CLOSED
    known_time = int(payment.get("dispute_event_time") or 0)
    if not dispute_step_applies(known_id=payment.get("dispute_id"), known_status=payment.get("dispute_status"),
                                known_time=known_time, dispute_id=str(obj.get("id")), status=status,
                                created=created):
        return "stale_dispute"
    newest = max(created, known_time) if payment.get("dispute_id") == obj.get("id") else created
    if payment.get("dispute_id") == obj.get("id") and payment.get("dispute_status") == status:
        txn.update(ref, _applied(event_id, dispute_event_time=newest))
        return "dispute_unchanged"
    txn.update(ref, _applied(event_id, dispute_id=obj.get("id"), dispute_status=status, dispute_event_time=newest,
                             dispute_reason=obj.get("reason"), dispute_amount=obj.get("amount")))
    _publish(db, txn, ref, payment, PaymentDisputed(
        **_ids(ref, payment), dispute_id=str(obj.get("id")), status=status, reason=str(obj.get("reason") or ""),
        amount=int(obj.get("amount") or 0), currency=str(obj.get("currency") or payment["currency"]), closed=closed,
        created=created))
    return f"dispute_{status}"


_STEPS = {
    "succeeded": _succeeded,
    "payment_failed": _failed,
    "processing": _in_flight(PROCESSING),
    "requires_action": _in_flight(REQUIRES_ACTION),
    "canceled": _canceled,
    "charge.refunded": _charge_refunded,
    **{kind: _refund_changed for kind in REFUND_EVENTS},
    **{kind: _dispute for kind in DISPUTE_EVENTS},
}
REFUND_STEPS = frozenset({"charge.refunded", *REFUND_EVENTS})  # their steps take the charge Stripe holds now


def intent_event(intent: dict[str, Any], kind: str, source: str) -> dict[str, Any]:
    """A Stripe event for what we learnt from the API itself (a cancel's answer, reconciliation),
    applied through the same steps as a webhook. It describes the intent as it is now."""
    return {"id": f"{source}:{intent.get('id')}:{kind}", "type": kind, "created": int(clock.utcnow().timestamp()),
            "data": {"object": intent}}


# ---- closing an unpaid order's intent ------------------------------------------------

STRIPE_CANCELLATION_REASONS = {"payment_timeout": "abandoned"}


def close_for_cancel(db, stripe, *, order_id: str, uid: str, reason: str, correlation_id: str | None) -> str:
    """order.cancel_requested: closes the order's PaymentIntent at Stripe before the stock is
    released (payment.canceled). If Stripe says it already succeeded, the payment succeeds and
    the order follows it; while it is processing, this retries until Stripe settles it.
    With no payment recorded yet, a closed payment is recorded so that an intent created later
    is closed too; an intent Stripe made for a call that crashed before recording it (its effect
    record holds it) is recorded on that payment and closed at Stripe now.
    That record names the user only while their account lives (read in its transaction, so a
    record that names them was written before identity.user_deleted, and payments' eraser finds
    it); for an account being deleted it and its event name the deleted-user placeholder."""
    ref = db.collection(PAYMENTS).document(payment_id_for(order_id))

    @gcf.transactional
    def read_or_close(txn) -> tuple[dict | None, str | None]:
        """(the payment recorded before, or None when this call closed it; the intent to close)."""
        snap = ref.get(transaction=txn)
        if snap.exists:
            payment = snap.to_dict()
            return payment, payment.get("provider_ref")
        orphan = (effects.done_result(txn, db, f"stripe-intent-{ref.id}") or {}).get("id")
        gone = account_gone_in(txn, db, uid)
        owner = DELETED_USER if gone else uid
        now = clock.utcnow()
        txn.create(ref, PaymentDoc.new({
            "payment_id": ref.id, "uid": owner, "user_ref": None if gone else db.collection(USERS).document(uid),
            "order_id": order_id, "order_ref": db.collection(ORDERS).document(order_id), "amount": 0, "currency": "",
            "provider": "stripe", "provider_ref": orphan, "customer": None, "status": CANCELED,
            "cancellation_reason": reason, "canceled_time": now, "failure_reason": None,
            "correlation_id": correlation_id or "", "created_time": now, "updated_time": now,
            **({"anonymised": True} if gone else {}),
        }))
        _publish(db, txn, ref, {"correlation_id": correlation_id}, PaymentCanceled(
            payment_id=ref.id, order_id=order_id, uid=owner, reason=reason))
        return None, orphan

    payment, intent_id = read_or_close(db.transaction())
    if payment is not None and payment["status"] not in PAYABLE:
        return f"already_{payment['status']}"  # canceled: payment.canceled is out; paid: the order follows it
    if intent_id is None:
        return "closed_without_intent"
    intent = effects.once(
        f"stripe-cancel-{ref.id}",
        lambda: _cancel_intent(stripe, intent_id, STRIPE_CANCELLATION_REASONS.get(reason, "requested_by_customer")),
        meta={"kind": "stripe_cancel_intent", "payment_id": ref.id}, db=db,
    )
    # Stripe's answer, applied as its event would be: a closed orphan that Stripe says succeeded
    # (it cannot have: nobody got its client secret) would succeed and be refunded by orders.
    kind = "payment_intent.succeeded" if intent["status"] == "succeeded" else "payment_intent.canceled"
    applied = apply_event(db, ref, intent_event({**intent, "cancellation_reason": reason}, kind, "cancel"))
    return applied.outcome if applied else "no_payment"


def _cancel_intent(stripe, intent_id: str, stripe_reason: str) -> dict[str, Any]:
    """Cancels at Stripe; a refusal is read from the intent's state (succeeded is an answer,
    processing is "not yet")."""
    import stripe as stripe_sdk  # noqa: PLC0415 - heavy; only payments pays for it

    try:
        intent = stripe.v1.payment_intents.cancel(intent_id, params={"cancellation_reason": stripe_reason})
    except stripe_sdk.InvalidRequestError:
        intent = stripe.v1.payment_intents.retrieve(intent_id)
        if intent.status not in ("succeeded", "canceled"):
            raise RetryLaterError(f"intent {intent_id} is {intent.status}; it cannot be cancelled yet") from None
    plain = _plain(intent)
    return {key: plain.get(key) for key in ("id", "status", "latest_charge", "amount_received", "currency")}


# ---- refunds -----------------------------------------------------------------------

def refund_cancelled_order(db, stripe, *, order_id: str, was_paid: bool) -> str:
    """order.cancelled after payment: refund through Stripe once, then mark refunded."""
    if not was_paid:
        return "not_paid"
    return refund_in_full(db, stripe, payment_id=payment_id_for(order_id), reason="order_cancelled")


def refund_in_full(db, stripe, *, payment_id: str, reason: str) -> str:
    """Refunds what is left of a succeeded payment through Stripe (once per attempt, under an
    effect record and a Stripe idempotency key), then marks it refunded (payment.refunded). Used
    for cancelled paid orders and for payments that succeeded for an order that could no longer
    be paid.

    Only a refund Stripe answers ``pending`` or ``succeeded`` is an outcome. One that failed or
    was canceled (in Stripe's answer, or through its webhook before this request marked it, or
    while it awaited the customer) is recorded on the payment once, as its webhook would be
    (flagged, admins alerted), and is never retried automatically: this request ends at once as
    a dead letter (``FailedPreconditionError``). Staff replay that dead letter to refund again
    (new keys, ``refund_keys``: Stripe would replay the failed refund for the old ones), or
    return the money another way and leave it. One that awaits the customer
    (``requires_action``) is recorded and waited for: no second refund while it may still
    succeed."""
    ref = db.collection(PAYMENTS).document(payment_id)
    snap = ref.get()
    if not snap.exists:
        return "no_payment"
    payment = snap.to_dict()
    if payment["status"] == REFUNDED:
        return "already_refunded"
    if payment["status"] not in (SUCCEEDED, PARTIALLY_REFUNDED):
        raise FailedPreconditionError(f"Payment {ref.id} is {payment['status']}; nothing to refund.")
    if refund_failure_unanswered(int(payment.get("refund_failures") or 0),
                                 int(payment.get("refund_failures_ended") or 0)):
        _end_on_refund_failure(db, ref, reason)  # it failed while this request waited (or crashed): no retry
    waiting = refunds_in(payment, {"requires_action"})
    if waiting:
        raise RetryLaterError(f"refund {waiting[0]} of {ref.id} awaits the customer's action")
    effect_key, idempotency_key = refund_keys(ref.id, int(payment.get("refund_failures") or 0))
    try:
        refund = effects.once(
            effect_key,
            lambda: _create_refund(stripe, ref.id, payment["provider_ref"], reason, idempotency_key),
            meta={"kind": "stripe_refund", "payment_id": ref.id}, db=db,
        )
        if refund.get("status") not in REFUND_DONE:  # a record kept by an earlier version: ask Stripe now
            refund = _refund_now(stripe, refund["id"])
    except RefundNotDoneError as exc:
        # Applied as Stripe's charge.refund.updated would be (its webhook may come too: applied once).
        event = {"id": f"refund:{exc.refund.get('id')}:{exc.refund.get('status')}", "type": "charge.refund.updated",
                 "created": int(clock.utcnow().timestamp()), "data": {"object": exc.refund}}
        applied = _apply_reading_charge(db, stripe, ref, event)
        if exc.refund.get("status") in REFUND_FAILED:
            _end_on_refund_failure(db, ref, reason)  # recorded and alerted once; a dead letter, not retried
        log.warning("a refund awaits the customer's action", payment_id=ref.id, refund_id=exc.refund.get("id"),
                    refund_status=exc.refund.get("status"), outcome=applied.outcome if applied else None)
        raise
    except Exception as exc:
        refused = final_refund_refusal(exc)
        if refused is None:
            raise
        _refuse_refund(db, ref, payment, refused, reason)

    @gcf.transactional
    def mark(txn) -> str:
        current = ref.get(transaction=txn).to_dict()
        if current["status"] == REFUNDED:
            return "already_refunded"
        if (current.get("refund_statuses") or {}).get(refund["id"]) in REFUND_FAILED:
            return "refund_failed"  # it failed since (its webhook came first): recorded and alerted, not refunded
        total = int(current.get("amount_received") or current["amount"])
        return _mark_refunded(db, txn, ref, current, total, full=True, reason=reason, refund_id=refund["id"],
                              refund_status=refund.get("status"))

    outcome = mark(db.transaction())
    if outcome == "refund_failed":  # as if Stripe had answered it failed: the same dead letter
        _end_on_refund_failure(db, ref, reason)
    return outcome


def _end_on_refund_failure(db, ref, reason: str) -> NoReturn:
    """A refund of the payment failed or was canceled at Stripe (recorded already: flagged, admins
    alerted once by payment.refund_failed). The request that asked for it ends here as a dead
    letter, never retried automatically: the payment records that a request ended on this
    failure (``refund_failures_ended``), so an admin's replay refunds again, under new keys."""

    @gcf.transactional
    def end(txn) -> dict[str, Any]:
        current = ref.get(transaction=txn).to_dict()
        txn.update(ref, PaymentDoc.fields(refund_failures_ended=int(current.get("refund_failures") or 0),
                                          updated_time=clock.utcnow()))
        return current

    payment = end(db.transaction())
    failed = refunds_in(payment, REFUND_FAILED)
    why = str(payment.get("refund_failure_reason") or "failed")
    log.error("a refund failed at Stripe: not retried automatically, the request is a dead letter",
              payment_id=ref.id, refund_ids=failed, failure_reason=why, refund_reason=reason)
    raise FailedPreconditionError(
        f"Stripe did not refund payment {ref.id} (failed refunds {', '.join(failed) or '?'}: {why}); the customer has "
        "not got the money back. Not retried automatically. Replay this delivery to refund again (a new refund "
        "at Stripe), or return the money another way and leave it (\"replay all\" skips it).",
        details={"payment_id": ref.id, "order_id": payment.get("order_id"), "reason": "refund_failed",
                 "refund_ids": failed, "failure_reason": why, MANUAL_REPLAY: True})


# Stripe refusals of a refund that no retry heals: the charge was disputed (charged back).
FINAL_REFUND_REFUSALS = frozenset({"charge_disputed"})


def final_refund_refusal(exc: BaseException) -> str | None:
    """Stripe's code when it refused a refund for good (``FINAL_REFUND_REFUSALS``), else None
    (a transient failure, retried). Pure."""
    import stripe as stripe_sdk  # noqa: PLC0415 - heavy; only payments pays for it

    if isinstance(exc, stripe_sdk.InvalidRequestError) and getattr(exc, "code", None) in FINAL_REFUND_REFUSALS:
        return str(exc.code)
    return None


def _refuse_refund(db, ref, payment: dict[str, Any], code: str, reason: str) -> NoReturn:
    """Stripe will not refund this payment (``code``): the payment is flagged for staff
    (``refund_refused``) and the delivery ends at once as a dead letter (a domain error is
    never retried blindly), which alerts admins; once the dispute is won, replaying it refunds."""
    ref.update(PaymentDoc.fields(refund_refused=code, refund_refused_time=clock.utcnow(),
                                 updated_time=clock.utcnow()))
    log.error("Stripe refused a refund for good: flagged for staff", payment_id=ref.id, code=code,
              refund_reason=reason, dispute_id=payment.get("dispute_id"))
    raise FailedPreconditionError(
        f"Stripe refused to refund payment {ref.id} ({code}: the charge is disputed). Replay this delivery "
        "once the dispute is won; a lost dispute has given the customer the money back already.",
        details={"payment_id": ref.id, "order_id": payment.get("order_id"), "reason": code,
                 "dispute_id": payment.get("dispute_id"), MANUAL_REPLAY: True})


def refund_metadata(payment_id: str, reason: str, project: str | None) -> dict[str, str]:
    """Our refund's metadata: the payment, the reason, and the project (as on the PaymentIntent),
    so that another deployment sharing the Stripe account answers its events ``not_ours``. Pure."""
    metadata = {"flowsuite_payment_id": payment_id, "reason": reason}
    if project:
        metadata["flowsuite_project"] = project
    return metadata


def _create_refund(stripe, payment_id: str, intent_id: str, reason: str, idempotency_key: str) -> dict[str, str]:
    """Creates the refund; one Stripe did not answer pending or succeeded raises
    ``RefundNotDoneError``, so its effect record is not kept as done. A repeated key may get
    Stripe's first answer replayed: a refund that is not done is read again for its status now."""
    refund = _plain(stripe.v1.refunds.create(
        params={"payment_intent": intent_id, "metadata": refund_metadata(payment_id, reason, settings.project_id())},
        options={"idempotency_key": idempotency_key}))
    if refund.get("status") not in REFUND_DONE:
        return _refund_now(stripe, refund["id"])
    return {"id": refund["id"], "status": refund["status"]}


def _refund_now(stripe, refund_id: str) -> dict[str, str]:
    """The refund as Stripe holds it now, if it is pending or succeeded; else ``RefundNotDoneError``."""
    refund = _plain(stripe.v1.refunds.retrieve(refund_id))
    if refund.get("status") not in REFUND_DONE:
        raise RefundNotDoneError(refund)
    return {"id": refund["id"], "status": refund["status"]}


# ---- reconciliation with Stripe ----------------------------------------------------

RECONCILED_STATES = {"succeeded": "payment_intent.succeeded", "canceled": "payment_intent.canceled",
                     "processing": "payment_intent.processing", "requires_action": "payment_intent.requires_action"}


def reconcile_with_stripe(db, stripe, *, since: dt.datetime, project: str | None,
                          refunds_since: dt.datetime | None = None) -> dict[str, int]:
    """Applies, through the webhook's own steps, any state the webhooks missed. Webhooks are not
    the only source of truth. One bad intent or event is counted, never a stop.

    First the refunds that failed or were canceled since ``refunds_since`` (Stripe's refund
    events, which it keeps 30 days: a refund can fail weeks after it was made, long after its
    intent left the window below). Then the PaymentIntents created since ``since``: successes,
    cancellations, refunds (the charge's total, in both directions: a total above the payment's
    is a refund missed; one below it, a refund that failed or was canceled, found among the
    charge's refunds)."""
    counts: dict[str, int] = {"checked": 0, "not_ours": 0, "applied": 0, "unchanged": 0, "unknown": 0, "errors": 0,
                              "refund_failures_checked": 0, "refund_failures_applied": 0}
    if refunds_since is not None:
        _reconcile_refund_failures(db, stripe, since=refunds_since, project=project, counts=counts)
    params = {"created": {"gte": int(since.timestamp())}, "limit": 100}
    for intent in stripe.v1.payment_intents.list(params=params).auto_paging_iter():
        counts["checked"] += 1
        obj = _plain(intent)
        if not _names_ours(obj.get("metadata") or {}, project):
            counts["not_ours"] += 1
            continue
        try:
            found = [intent_event(obj, RECONCILED_STATES[obj["status"]], "reconcile")] \
                if obj.get("status") in RECONCILED_STATES else []
            if obj.get("status") == "succeeded" and obj.get("latest_charge"):
                found += _refund_drift_events(db, stripe, obj, project)
            for event in found:
                changed = _apply_missed(db, stripe, event, project)
                counts["applied" if changed else "unchanged"] += 1
        except UnknownPaymentError:
            counts["unknown"] += 1  # its creation crashed before the payment was recorded: nobody can pay it
        except Exception as exc:  # noqa: BLE001 - one intent never stops the others
            counts["errors"] += 1
            log.error("reconciliation skipped an intent", intent_id=obj.get("id"),
                      error=f"{type(exc).__name__}: {exc}"[:300])
    return counts


def _apply_missed(db, stripe, event: dict[str, Any], project: str | None) -> bool:
    """Applies one event reconciliation found; whether it changed anything (logged when it did)."""
    applied = handle_stripe_event(db, event, project=project, stripe=stripe)
    changed = not applied.outcome.startswith(("already", "duplicate", "stale", "not_ours", "ignored"))
    if changed:
        log.warning("reconciliation applied a state the webhooks missed", payment_id=applied.payment_id,
                    stripe_event_type=event["type"], outcome=applied.outcome)
    return changed


REFUND_EVENTS_MAX = 1000  # refund events one run reads (10 pages), newest first


def _reconcile_refund_failures(db, stripe, *, since: dt.datetime, project: str | None,
                               counts: dict[str, int]) -> None:
    """Stripe's ``charge.refund.updated`` events since ``since`` whose refund failed or was
    canceled, applied as their webhook would have been (once: a failure already recorded answers
    ``already_``/``duplicate``). Refunds of other deployments answer ``not_ours``."""
    params = {"type": "charge.refund.updated", "created": {"gte": int(since.timestamp())}, "limit": 100}
    try:  # newest first, at most REFUND_EVENTS_MAX a run: a slow or failing list never stops the intents' pass
        events = list(itertools.islice(stripe.v1.events.list(params=params).auto_paging_iter(), REFUND_EVENTS_MAX))
    except Exception as exc:  # noqa: BLE001
        counts["errors"] += 1
        log.error("reconciliation could not list Stripe's refund events", error=f"{type(exc).__name__}: {exc}"[:300])
        return
    for item in events:
        event = _plain(item)
        refund = (event.get("data") or {}).get("object") or {}
        if refund.get("status") not in REFUND_FAILED:
            continue
        counts["refund_failures_checked"] += 1
        try:
            if _apply_missed(db, stripe, {"id": event["id"], "type": event["type"], "created": event.get("created"),
                                          "data": {"object": refund}}, project):
                counts["refund_failures_applied"] += 1
        except Exception as exc:  # noqa: BLE001 - one event never stops the others
            counts["errors"] += 1
            log.error("reconciliation skipped a refund failure", stripe_event_id=event.get("id"),
                      refund_id=refund.get("id"), error=f"{type(exc).__name__}: {exc}"[:300])


def _refund_drift_events(db, stripe, intent: dict[str, Any], project: str | None) -> list[dict[str, Any]]:
    """The events that bring a payment's refunded total to its charge's at Stripe: the charge
    (``charge.refunded``) when Stripe's is higher, each failed or canceled refund not recorded
    as such (``charge.refund.updated``) when it is lower."""
    charge = _plain(stripe.v1.charges.retrieve(intent["latest_charge"]))
    at_stripe = int(charge.get("amount_refunded") or 0)
    snap = db.collection(PAYMENTS).document(_names_ours(intent.get("metadata") or {}, project) or "-").get()
    payment = snap.to_dict() if snap.exists else {}
    drift = refund_drift(int(payment.get("amount_refunded") or 0), at_stripe)
    if drift == "up":  # the id names the failures before it: a total refunded again after one is new
        failures = int(payment.get("refund_failures") or 0)
        return [{**intent_event(charge, "charge.refunded", "reconcile"),
                 "id": f"reconcile:{charge['id']}:refunded:{at_stripe}" + (f":after{failures}" if failures else "")}]
    if drift == "same":
        return []
    recorded = payment.get("refund_statuses") or {}
    refunds = stripe.v1.refunds.list(params={"charge": charge["id"], "limit": 100}).auto_paging_iter()
    return [{**intent_event(refund, "charge.refund.updated", "reconcile"),
             "id": f"reconcile:{refund['id']}:{refund['status']}"}
            for refund in map(_plain, refunds)
            if refund.get("status") in REFUND_FAILED and recorded.get(refund.get("id")) not in REFUND_FAILED]


def _plain(obj) -> dict[str, Any]:
    """A Stripe object as plain JSON-like dicts (what a webhook's ``data.object`` is)."""
    return obj if type(obj) is dict else json.loads(str(obj))


# ---- erasure -----------------------------------------------------------------------

def erase(db, stripe, uid: str) -> None:
    """Payments are kept for accounting, unlinked from the person; the Stripe customer goes."""
    while True:
        snaps = list(db.collection(PAYMENTS).where(filter=FieldFilter("uid", "==", uid)).limit(200).stream())
        if not snaps:
            break
        batch = db.batch()
        for snap in snaps:
            batch.update(snap.reference,
                         PaymentDoc.fields(uid=DELETED_USER, user_ref=None, customer=None, anonymised=True))
        batch.commit()
    ref = db.collection(CUSTOMERS).document(uid)
    snap = ref.get()
    if snap.exists:
        customer_id = snap.get("customer_id")
        effects.once(f"stripe-customer-delete-{ids.person_key(uid)}", lambda: _delete_customer(stripe, customer_id),
                     meta={"kind": "stripe_customer_delete"}, db=db)
        ref.delete()
    # Effect records hold the uid in their metadata: keep their outcome, drop the person.
    for snap in db.collection(effects.COLLECTION).where(filter=FieldFilter("uid", "==", uid)).stream():
        snap.reference.update(EffectDoc.fields(uid=DELETED_USER))
    log.info("payments unlinked from a deleted user")


def _delete_customer(stripe, customer_id: str) -> dict:
    try:
        stripe.v1.customers.delete(customer_id)
    except Exception as exc:  # noqa: BLE001 - a customer already gone is fine
        if "No such customer" not in str(exc) and "404" not in str(exc):
            raise
    return {"deleted": customer_id}
