"""Payments service code: intents, the Stripe webhook, refunds, erasure.

Stripe is reached through a ``StripeClient`` passed in; every call that creates
something carries a Stripe idempotency key and runs under ``effects.once`` so a
retry neither charges twice nor loses the payment.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import clock, effects, events, faults, ids, log
from flowsuite.core.errors import FailedPreconditionError, NotFoundError, PermissionDeniedError, RetryLaterError
from flowsuite.payments.events import PaymentFailed, PaymentRefunded, PaymentSucceeded

PAYMENTS = "payments"
CUSTOMERS = "stripe_customers"
ORDERS = "orders"  # read only, as docs/collections.md allows
DELETED_USER = "deleted-user"

REQUIRES_PAYMENT, SUCCEEDED, FAILED, REFUNDED = "requires_payment", "succeeded", "failed", "refunded"


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
    ref.set({"uid": uid, "customer_id": result["id"], "created_time": gcf.SERVER_TIMESTAMP}, merge=True)
    return result["id"]


def create_intent(db, stripe, *, uid: str, email: str | None, order_id: str, correlation_id: str) -> dict[str, Any]:
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
        lambda: _create_intent(stripe, payment_id, order_id, uid, amount, currency, customer),
        meta={"uid": uid, "kind": "stripe_payment_intent", "payment_id": payment_id}, db=db,
    )
    faults.maybe_fail("payments.after_stripe_intent", db=db)  # a crash between Stripe and Firestore
    ref = db.collection(PAYMENTS).document(payment_id)
    now = clock.utcnow()
    try:  # created once: a retry after a crash finds it (no read needed to know)
        ref.create({
            "payment_id": payment_id,
            "uid": uid,
            "user_ref": db.collection("users").document(uid),
            "order_id": order_id,
            "order_ref": db.collection(ORDERS).document(order_id),
            "amount": amount,
            "currency": currency,
            "provider": "stripe",
            "provider_ref": intent["id"],
            "customer": customer,
            "status": REQUIRES_PAYMENT,
            "failure_reason": None,
            "correlation_id": order.get("correlation_id") or correlation_id,
            "created_time": now,
            "updated_time": now,
        })
    except AlreadyExists:
        pass
    return {"payment_id": payment_id, "client_secret": intent["client_secret"], "amount": amount,
            "currency": currency, "customer": customer}


def _create_intent(stripe, payment_id, order_id, uid, amount, currency, customer) -> dict[str, str]:
    intent = stripe.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "payment_method_types": ["card"],
            "metadata": {"flowsuite_payment_id": payment_id, "order_id": order_id, "uid": uid},
        },
        options={"idempotency_key": f"intent-{payment_id}"},
    )
    return {"id": intent.id, "client_secret": intent.client_secret}


# ---- webhook -----------------------------------------------------------------------

HANDLED = ("payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded")


class UnknownPaymentError(RetryLaterError):
    """A PaymentIntent we may have created but not recorded yet: Stripe should retry."""


@dataclasses.dataclass(frozen=True)
class Applied:
    """What a Stripe event did, and to which checkout (for the webhook's log line)."""

    outcome: str
    payment_id: str | None = None
    correlation_id: str | None = None


def payment_ref(db, obj: dict[str, Any], intent_id: str):
    """The payment a Stripe object is about: named by the PaymentIntent's metadata
    (set at creation, delivered in every PaymentIntent event), else found by the
    intent id (a charge's events carry only that). The caller checks the match."""
    payment_id = (obj.get("metadata") or {}).get("flowsuite_payment_id")
    if isinstance(payment_id, str) and payment_id.startswith("pay_") and "/" not in payment_id:
        return db.collection(PAYMENTS).document(payment_id)
    query = db.collection(PAYMENTS).where(filter=FieldFilter("provider_ref", "==", intent_id)).limit(1)
    found = list(query.stream())
    return found[0].reference if found else None


def handle_stripe_event(db, event: dict[str, Any]) -> Applied:
    """Applies one verified Stripe event once. Returns what happened.

    One transaction reads the payment, skips an event id it already applied (kept
    on the payment, ``stripe_event_ids``), and writes the new status with its
    event. The payment is found before the transaction (a query inside one would
    lock far more than one document), by id when the intent's metadata names it.
    """
    event_id, kind = event["id"], event["type"]
    if kind not in HANDLED:
        return Applied("ignored")
    obj = event["data"]["object"]
    intent_id = (obj.get("payment_intent") if kind == "charge.refunded" else obj.get("id")) or ""
    faults.maybe_fail("payments.webhook", db=db)  # a transient failure: Stripe must retry
    ref = payment_ref(db, obj if kind != "charge.refunded" else {}, intent_id)

    @gcf.transactional
    def apply(txn) -> Applied | None:
        snap = ref.get(transaction=txn)
        payment = snap.to_dict() if snap.exists else None
        if payment is None or payment.get("provider_ref") != intent_id:
            return None
        if event_id in (payment.get("stripe_event_ids") or []):
            return Applied("duplicate", ref.id, payment.get("correlation_id"))
        if kind == "payment_intent.succeeded":
            outcome = _succeed(db, txn, ref, payment, event_id)
        elif kind == "payment_intent.payment_failed":
            error = obj.get("last_payment_error") or {}
            outcome = _fail(db, txn, ref, payment, error.get("code") or error.get("message") or "payment_failed",
                            event_id)
        else:
            outcome = _refund(db, txn, ref, payment, event_id)
        return Applied(outcome, ref.id, payment.get("correlation_id"))

    applied = apply(db.transaction()) if ref is not None else None
    if applied is None:
        metadata = obj.get("metadata") or {}
        if metadata and "flowsuite_payment_id" not in metadata:
            return Applied("not_ours")
        raise UnknownPaymentError(f"no payment recorded for {intent_id} yet")
    return applied


def _applied(event_id: str | None, **fields: Any) -> dict[str, Any]:
    """A payment's new state, and the Stripe event that caused it (applied once)."""
    seen = {"stripe_event_ids": gcf.ArrayUnion([event_id])} if event_id else {}
    return {**fields, "updated_time": clock.utcnow(), **seen}


def _succeed(db, txn, ref, payment: dict, event_id: str) -> str:
    if payment["status"] != REQUIRES_PAYMENT:
        return f"already_{payment['status']}"
    txn.update(ref, _applied(event_id, status=SUCCEEDED, succeeded_time=clock.utcnow()))
    events.publish(txn, PaymentSucceeded(payment_id=ref.id, order_id=payment["order_id"], uid=payment["uid"],
                                         amount=payment["amount"], currency=payment["currency"]),
                   subject=f"{PAYMENTS}/{ref.id}", correlation_id=payment.get("correlation_id"), db=db)
    return SUCCEEDED


def _fail(db, txn, ref, payment: dict, reason: str, event_id: str) -> str:
    if payment["status"] != REQUIRES_PAYMENT:
        return f"already_{payment['status']}"
    txn.update(ref, _applied(event_id, status=FAILED, failure_reason=reason[:300]))
    events.publish(txn, PaymentFailed(payment_id=ref.id, order_id=payment["order_id"], uid=payment["uid"],
                                      reason=reason[:300]),
                   subject=f"{PAYMENTS}/{ref.id}", correlation_id=payment.get("correlation_id"), db=db)
    return FAILED


def _refund(db, txn, ref, payment: dict, event_id: str | None) -> str:
    if payment["status"] == REFUNDED:
        return "already_refunded"
    if payment["status"] != SUCCEEDED:
        raise FailedPreconditionError(f"Payment {ref.id} is {payment['status']}; only a succeeded payment is refunded.")
    txn.update(ref, _applied(event_id, status=REFUNDED, refunded_time=clock.utcnow()))
    events.publish(txn, PaymentRefunded(payment_id=ref.id, order_id=payment["order_id"], uid=payment["uid"],
                                        amount=payment["amount"], currency=payment["currency"]),
                   subject=f"{PAYMENTS}/{ref.id}", correlation_id=payment.get("correlation_id"), db=db)
    return REFUNDED


# ---- refunds -----------------------------------------------------------------------

def refund_cancelled_order(db, stripe, *, order_id: str, was_paid: bool) -> str:
    """order.cancelled after payment: refund through Stripe once, then mark refunded."""
    if not was_paid:
        return "not_paid"
    ref = db.collection(PAYMENTS).document(payment_id_for(order_id))
    snap = ref.get()
    if not snap.exists:
        return "no_payment"
    payment = snap.to_dict()
    if payment["status"] == REFUNDED:
        return "already_refunded"
    if payment["status"] != SUCCEEDED:
        raise FailedPreconditionError(f"Payment {ref.id} is {payment['status']}; nothing to refund.")
    refund = effects.once(
        f"stripe-refund-{ref.id}",
        lambda: _create_refund(stripe, ref.id, payment["provider_ref"]),
        meta={"kind": "stripe_refund", "payment_id": ref.id}, db=db,
    )
    if refund.get("status") not in ("succeeded", "pending"):
        raise RetryLaterError(f"refund {refund.get('id')} is {refund.get('status')}")

    @gcf.transactional
    def mark(txn) -> str:
        current = ref.get(transaction=txn).to_dict()
        txn.update(ref, {"refund_id": refund["id"]})
        return _refund(db, txn, ref, current, None)

    return mark(db.transaction())


def _create_refund(stripe, payment_id: str, intent_id: str) -> dict[str, str]:
    refund = stripe.v1.refunds.create(params={"payment_intent": intent_id},
                                      options={"idempotency_key": f"refund-{payment_id}"})
    return {"id": refund.id, "status": refund.status}


# ---- erasure -----------------------------------------------------------------------

def erase(db, stripe, uid: str) -> None:
    """Payments are kept for accounting, unlinked from the person; the Stripe customer goes."""
    while True:
        snaps = list(db.collection(PAYMENTS).where(filter=FieldFilter("uid", "==", uid)).limit(200).stream())
        if not snaps:
            break
        batch = db.batch()
        for snap in snaps:
            batch.update(snap.reference, {"uid": DELETED_USER, "user_ref": None, "customer": None, "anonymised": True})
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
        snap.reference.update({"uid": DELETED_USER})
    log.info("payments unlinked from a deleted user")


def _delete_customer(stripe, customer_id: str) -> dict:
    try:
        stripe.v1.customers.delete(customer_id)
    except Exception as exc:  # noqa: BLE001 - a customer already gone is fine
        if "No such customer" not in str(exc) and "404" not in str(exc):
            raise
    return {"deleted": customer_id}
