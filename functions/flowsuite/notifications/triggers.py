"""Notifications document triggers (``notifications_on_*``): an instance serving one imports
this module alone (``registry.own_module``); ``flowsuite.notifications.functions`` re-exports them."""

from __future__ import annotations

from firebase_functions import firestore_fn

from flowsuite.contracts.identity import EmailChanged, UserCreated
from flowsuite.contracts.orders import OrderCancelled, OrderNeedsReview, OrderPaid
from flowsuite.contracts.payments import PaymentDisputed, PaymentFailed, PaymentRefunded, PaymentRefundFailed
from flowsuite.core import bus, clients, effects, ids, log, options
from flowsuite.core.erasure import eraser
from flowsuite.notifications import config, ffpush, service
from flowsuite.notifications.templates import money

__all__ = [
    "notifications_on_user_created",
    "notifications_on_email_changed",
    "notifications_on_order_paid",
    "notifications_on_order_cancelled",
    "notifications_on_payment_failed",
    "notifications_on_payment_refunded",
    "notifications_on_payment_disputed",
    "notifications_on_payment_refund_failed",
    "notifications_on_order_needs_review",
    "notifications_on_user_deleted",
    "notifications_on_ff_push_created",
    "notifications_on_ff_user_push_created",
]


def _notify(event, uid: str, kind: str, context: dict, data: dict[str, str] | None = None, once=None,
            order_id: str | None = None, only: tuple[str, ...] | None = None) -> None:
    service.notify(
        clients.firestore(), clients.push_sender(), auth=clients.auth(), once=once or event.once, uid=uid, kind=kind,
        event_id=event.id, context={"app": config.value(config.APP_NAME), **context},
        data={"type": kind, **(data or {})}, correlation_id=event.correlation_id, order_id=order_id, only=only,
    )


def _welcome_once(event, uid: str):
    """The welcome email goes once per person, whichever event sends it: the sign-up, or the
    first address an account gets later (an anonymous account upgraded). Other steps stay the
    delivery's own (``Event.once``)."""

    def once(step, perform):
        if step != "email":
            return event.once(step, perform)
        return effects.once(f"welcome-email-{ids.person_key(uid)}", perform, meta={"kind": "welcome_email"},
                            db=clients.firestore())

    return once


@bus.subscriber(UserCreated, transactional=False, secrets=config.SECRETS)
def notifications_on_user_created(event) -> None:
    """identity.user_created -> welcome (inbox, email; the email once per person)."""
    d = event.data
    _notify(event, d.uid, "welcome", {"name": d.display_name or (d.email or "there").split("@")[0]},
            once=_welcome_once(event, d.uid))


@bus.subscriber(EmailChanged, transactional=False, secrets=config.SECRETS)
def notifications_on_email_changed(event) -> None:
    """identity.email_changed with a first address (an anonymous account upgraded) -> the welcome
    email it could not get at sign-up (once per person; the inbox had its welcome already)."""
    d = event.data
    if not d.first:
        return
    _notify(event, d.uid, "welcome", {"name": "there"}, once=_welcome_once(event, d.uid), only=("email",))


@bus.subscriber(OrderPaid, transactional=False, secrets=config.SECRETS)
def notifications_on_order_paid(event) -> None:
    """order.paid -> receipt (inbox, push, email), unless the order is no longer paid (a late or replayed event)."""
    d = event.data
    _notify(event, d.uid, "order_paid", {"order_id": d.order_id, "amount": money(d.total, d.currency)},
            {"order_id": d.order_id}, order_id=d.order_id)


@bus.subscriber(OrderCancelled, transactional=False, secrets=config.SECRETS)
def notifications_on_order_cancelled(event) -> None:
    """order.cancelled -> inbox, push (a failed payment has its own notification)."""
    d = event.data
    if d.reason == "payment_failed":
        return
    _notify(event, d.uid, "order_cancelled", {"order_id": d.order_id, "reason": d.reason.replace("_", " ")},
            {"order_id": d.order_id})


@bus.subscriber(PaymentFailed, transactional=False, secrets=config.SECRETS)
def notifications_on_payment_failed(event) -> None:
    """payment.failed -> inbox, push: the card was declined, the order stays payable with another one
    (unless it no longer awaits payment: paid with another card, cancelled, expired)."""
    d = event.data
    _notify(event, d.uid, "payment_failed", {"order_id": d.order_id, "reason": (d.reason or "declined").replace("_", " ")},
            {"order_id": d.order_id, "attempt": str(d.attempt)}, order_id=d.order_id)


@bus.subscriber(PaymentRefunded, transactional=False, secrets=config.SECRETS)
def notifications_on_payment_refunded(event) -> None:
    """payment.refunded -> inbox, push, email, saying why."""
    d = event.data
    _notify(event, d.uid, "payment_refunded",
            {"order_id": d.order_id, "amount": money(d.amount, d.currency), "why": refund_reason_text(d)},
            {"order_id": d.order_id, "full": "true" if d.full else "false"})


def refund_reason_text(d) -> str:
    if d.reason.startswith("order_not_payable"):
        return ("Your payment arrived after the order had been cancelled or could no longer be paid, "
                "so it was refunded in full.")
    if not d.full:
        return f"This is a partial refund: {money(d.amount_refunded or d.amount, d.currency)} refunded in all."
    return ""


def _admin_once(event, admin: str):
    """An alert's steps for one admin, named after that admin (``service.admin_step``)."""
    return lambda step, perform: event.once(service.admin_step(step, admin), perform)


@bus.subscriber(PaymentDisputed, transactional=False, secrets=config.SECRETS)
def notifications_on_payment_disputed(event) -> None:
    """payment.disputed -> every admin (inbox, email): a chargeback to answer in the Stripe Dashboard."""
    d = event.data
    context = {"order_id": d.order_id, "payment_id": d.payment_id, "status": d.status.replace("_", " "),
               "reason": d.reason or "unknown", "amount": money(d.amount, d.currency)}
    for admin in service.admin_uids(clients.firestore()):
        _notify(event, admin, "dispute_update", context, {"order_id": d.order_id, "dispute_id": d.dispute_id},
                once=_admin_once(event, admin))


@bus.subscriber(PaymentRefundFailed, transactional=False, secrets=config.SECRETS)
def notifications_on_payment_refund_failed(event) -> None:
    """payment.refund_failed -> every admin (inbox, email): a refund did not reach the customer, who
    is still charged. Nothing retries it: staff replay the refund's dead letter (a new refund) or
    return the money another way and leave it (no dead letter once the refund had been confirmed:
    the Stripe Dashboard)."""
    d = event.data
    context = {"order_id": d.order_id, "payment_id": d.payment_id, "refund_id": d.refund_id,
               "status": d.status, "reason": (d.reason or d.status).replace("_", " "),
               "amount": money(d.amount, d.currency), "refunded": money(d.amount_refunded, d.currency)}
    for admin in service.admin_uids(clients.firestore()):
        _notify(event, admin, "refund_failed", context, {"order_id": d.order_id, "refund_id": d.refund_id},
                once=_admin_once(event, admin))


@bus.subscriber(OrderNeedsReview, transactional=False, secrets=config.SECRETS)
def notifications_on_order_needs_review(event) -> None:
    """order.needs_review -> every admin (inbox, email): a paid order lost its customer (the account
    was deleted); staff fulfil it or cancel it (which refunds it)."""
    d = event.data
    context = {"order_id": d.order_id, "amount": money(d.total, d.currency), "status": d.status}
    for admin in service.admin_uids(clients.firestore()):
        _notify(event, admin, "order_review", context, {"order_id": d.order_id, "reason": d.reason},
                once=_admin_once(event, admin))


@eraser(collections=("users/{uid}/notifications", "users/{uid}/fcm_tokens", "users/{uid}/settings",
                     ffpush.RATE_LIMITS, service.SUPPRESSIONS, ffpush.FF_PUSH, ffpush.FF_USER_PUSH))
def notifications_on_user_deleted(db, uid: str) -> None:
    service.erase(db, uid)
    ffpush.erase_pushes(db, uid)


def _process_ff(collection: str, doc_id: str) -> None:
    with log.bind(domain="notifications", function=f"ff_push:{collection}", subject=f"{collection}/{doc_id}"):
        try:
            outcome = ffpush.process(clients.firestore(), clients.push_sender(), collection, doc_id)
        except Exception as exc:  # noqa: BLE001 - a trigger is never retried: the document says why
            outcome = ffpush.fail_unexpectedly(clients.firestore(), collection, doc_id, exc)
        if outcome in ("skipped", "missing"):
            log.info("flutterflow push skipped", outcome=outcome)


@options.trigger(firestore_fn.on_document_created, document="ff_push_notifications/{push_id}")
def notifications_on_ff_push_created(event: firestore_fn.Event) -> None:
    """FlutterFlow broadcast push (admins)."""
    _process_ff(ffpush.FF_PUSH, event.params["push_id"])


@options.trigger(firestore_fn.on_document_created, document="ff_user_push_notifications/{push_id}")
def notifications_on_ff_user_push_created(event: firestore_fn.Event) -> None:
    """FlutterFlow targeted push ("Trigger Push Notification" action)."""
    _process_ff(ffpush.FF_USER_PUSH, event.params["push_id"])
