"""Notifications service code: deliver a notification on each channel once.

Each external send (push, email) runs under the delivery's ``once`` guard (the
bus keeps its result on the delivery record), so a redelivered event never sends
twice. The inbox document's id is the event id and it is created once.
Preferences (``users/{uid}/settings/notifications``) turn a channel off per type:
``{"order_paid": {"email": false}}``.

A notification about an order announces what the order is *now*: a late
redelivery or an admin's replay of an old ``order.paid`` for an order since
refunded or cancelled sends no receipt. Before sending, the order is read
(``orders/{id}``, which docs/collections.md lets notifications read) and a
notification whose news is no longer true is skipped, its reason kept on the
delivery record (``steps.skipped``) and logged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import ids, log, settings
from flowsuite.core.errors import InvalidArgumentError, PermissionDeniedError
from flowsuite.notifications import config, devices
from flowsuite.notifications import email as mail
from flowsuite.notifications.documents import EmailSuppressionDoc, FcmTokenDoc, InboxDoc
from flowsuite.notifications.push import PushMessage, PushMessageError, PushSender
from flowsuite.notifications.templates import TEMPLATES, for_email

USERS = "users"
ORDERS = "orders"  # read only, as docs/collections.md allows: an order's status before announcing it
INBOX = "notifications"
TOKENS = "fcm_tokens"
SETTINGS = "settings"
PREFERENCES_DOC = "notifications"
CHANNELS = ("inbox", "push", "email")


def enabled_channels(kind: str, preferences: Any) -> list[str]:
    """The template's channels minus those the user turned off for this type. Pure; a
    malformed preferences document turns nothing off (never a failing delivery)."""
    wanted = TEMPLATES[kind].channels
    off = preferences.get(kind) if isinstance(preferences, dict) else None
    off = off if isinstance(off, dict) else {}
    return [c for c in wanted if off.get(c, True) is not False]


# A notification about an order is true only while the order is in one of these statuses
# (the orders domain's, docs/collections.md): a receipt ("we received your payment") while
# the order is paid or fulfilled; "try another card, your items are still reserved" while it
# still awaits payment. Other kinds announce something that stays true (a cancellation, a refund).
STILL_TRUE: dict[str, frozenset[str]] = {
    "order_paid": frozenset({"paid", "fulfilled"}),
    "payment_failed": frozenset({"pending_payment"}),
}


def stale_reason(kind: str, order: dict[str, Any] | None) -> str | None:
    """Why a notification of ``kind`` about ``order`` (as it is now) would announce something
    that is no longer true (``order_refunded``, ``order_cancelled``, ``order_paid``...), or None
    to send it. No order document leaves nothing to contradict the event: it is sent. Pure."""
    wanted = STILL_TRUE.get(kind)
    if wanted is None or order is None:
        return None
    status = order.get("status")
    return None if status in wanted else f"order_{status}"


Once = Callable[[str, Callable[[], dict[str, Any] | None]], dict[str, Any]]


def notify(db, push: PushSender, *, auth, once: Once, uid: str, kind: str, event_id: str, context: dict[str, Any],
           data: dict[str, str] | None = None, correlation_id: str | None = None, order_id: str | None = None,
           only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Sends one notification on every enabled channel, each exactly once. Returns outcomes.

    ``once(step, perform)`` runs an external send at most once (``Event.once``). ``order_id``:
    the order the notification is about, checked as it is now (``stale_reason``). ``only``
    narrows the template's channels (a welcome email sent later, without a second inbox entry).
    The email goes to the address Firebase Auth holds now (``auth`` is ``firebase_admin.auth``),
    never a stale copy on the profile: an address changed in the console, or an anonymous account
    upgraded with linkWithCredential, gets its mail although no blocking function saw it."""
    user_ref = db.collection(USERS).document(uid)
    user = user_ref.get()
    profile = user.to_dict() if user.exists else None
    if profile is None or profile.get("status") == "deleting":
        log.info("notification skipped: no active user", kind=kind)
        return {"skipped": "no_user"}
    if order_id and kind in STILL_TRUE:
        order = db.collection(ORDERS).document(order_id).get()
        reason = stale_reason(kind, order.to_dict() if order.exists else None)
        if reason:
            once("skipped", lambda: {"sent": 0, "reason": reason, "order_id": order_id})  # kept on the delivery
            log.info("notification skipped: what it announces is no longer true", kind=kind, order_id=order_id,
                     reason=reason)
            return {"skipped": reason}
    prefs_snap = user_ref.collection(SETTINGS).document(PREFERENCES_DOC).get()
    channels = enabled_channels(kind, prefs_snap.to_dict() if prefs_snap.exists else None)
    asked = [c for c in TEMPLATES[kind].channels if only is None or c in only]
    channels = [c for c in channels if c in asked]
    title, text, _ = TEMPLATES[kind].render(context)
    outcomes: dict[str, str] = {}
    for channel in channels:
        key = f"notify-{event_id}-{channel}"
        if channel == "inbox":
            result = _inbox(user_ref, event_id, kind, title, text, data, correlation_id)
        elif channel == "push":
            result = once(channel, lambda: _push(db, push, user_ref, title, text, data or {}))
        else:
            if not mail.enabled():
                outcomes[channel] = "email_off"
                continue
            address, missing = current_address(auth, uid)
            if address is None:
                outcomes[channel] = missing
                continue
            if settings.blocked_email_domain(address):
                outcomes[channel] = "blocked_domain"
                continue
            if undeliverable(db, uid, address):
                outcomes[channel] = "undeliverable"
                continue
            subject, plain, html = TEMPLATES[kind].render(for_email(context))
            msg = mail.build(to=address, subject=subject, text=plain, html=html, message_id_seed=key)
            result = once(channel, lambda msg=msg, address=address: _email(db, uid, address, msg))
        outcomes[channel] = "sent" if result.get("sent", 1) else str(result.get("reason", "nothing_sent"))
    for channel in set(asked) - set(channels):
        outcomes[channel] = "disabled"
    log.info("notification delivered", kind=kind, outcomes=outcomes)
    return outcomes


def current_address(auth, uid: str) -> tuple[str | None, str]:
    """(the address Firebase Auth holds for the user now, or None and why: ``no_user``,
    ``no_address``). One Auth lookup, made only when an email is about to go out; a transient
    failure raises, and the bus retries the delivery."""
    try:
        user = auth.get_user(uid)
    except auth.UserNotFoundError:
        return None, "no_user"
    return usable_address(user.email)


def usable_address(email: Any) -> tuple[str | None, str]:
    """(the address, "") when ``email`` can be sent to, else (None, "no_address"). Pure."""
    if isinstance(email, str) and "@" in email.strip():
        return email.strip(), ""
    return None, "no_address"


SUPPRESSIONS = "email_suppressions"  # email_suppressions/{uid}: an address a server refused for good


def address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def undeliverable(db, uid: str, address: str) -> bool:
    """The user's address was refused for good (and is still their address): no more sends."""
    snap = db.collection(SUPPRESSIONS).document(uid).get()
    return snap.exists and snap.to_dict().get("address_hash") == address_hash(address)


def redact_address(text: str, address: str) -> str:
    """The server's words without the address (servers quote it: `<a@b>: User unknown`). Pure."""
    return re.sub(re.escape(address), "<address>", text, flags=re.IGNORECASE).replace("<<address>>", "<address>")


def _email(db, uid: str, address: str, msg) -> dict[str, Any]:
    """Sends once; a permanent rejection (5xx) marks the address undeliverable and is an outcome:
    no retry, no dead letter. A transient failure raises, and the bus retries with the same
    Message-ID."""
    try:
        return {"message_id": mail.send(msg)}
    except mail.PermanentRejectionError as exc:
        db.collection(SUPPRESSIONS).document(uid).set(EmailSuppressionDoc.new(
            uid=uid, address_hash=address_hash(address), code=exc.code,
            reason=redact_address(exc.reason, address)[:300],
            created_time=gcf.SERVER_TIMESTAMP,
        ))
        log.warning("email address refused for good: marked undeliverable", code=exc.code)
        return {"sent": 0, "reason": "undeliverable", "message_id": msg["Message-ID"]}


def admin_uids(db, limit: int = 20) -> list[str]:
    """The admins to alert (identity keeps each profile's role), in a stable order."""
    query = db.collection(USERS).where(filter=FieldFilter("role", "==", "admin")).limit(limit)
    return sorted(snap.id for snap in query.stream())


def admin_step(step: str, admin_uid: str) -> str:
    """The name under which one delivery keeps an alert's step (``Event.once``) for one admin.
    Named after the admin, not their place in the list: an admin added or removed between
    retries of the delivery neither misses the alert nor makes another get it twice. Through
    ``person_key``: a plain name the delivery record can hold, and no uid left in it once
    that admin's account is erased. Pure."""
    return f"{step}_admin_{ids.person_key(admin_uid)}"


def _inbox(user_ref, event_id: str, kind: str, title: str, body: str, data, correlation_id) -> dict:
    """Creates the inbox entry once: a retry finds it (and leaves ``read`` as the user set it)."""
    ref = user_ref.collection(INBOX).document(event_id)
    try:
        ref.create(InboxDoc.new(
            type=kind, title=title, body=body, data=data or {}, read=False,
            created_time=gcf.SERVER_TIMESTAMP, event_id=event_id, correlation_id=correlation_id,
        ))
    except AlreadyExists:
        pass
    return {"inbox_id": ref.id}


def _push(db, push: PushSender, user_ref, title: str, body: str, data: dict[str, str]) -> dict:
    # The user's newest devices (at most PUSH_TOKENS_PER_USER, read a page at a time): a malformed
    # token document is skipped, never a failed delivery.
    tokens = devices.newest_devices(user_ref.collection(TOKENS))
    if not tokens:
        return {"sent": 0, "reason": "no_tokens"}
    try:
        result = push.send(tokens, PushMessage(title=title, body=body, data=data))
    except PushMessageError as exc:  # the message's fault, not the tokens': none is pruned
        log.warning("push not sent: the message was refused", error=str(exc))
        return {"sent": 0, "reason": "message_refused"}
    prune_tokens(db, result.invalid_tokens)
    return {"sent": result.sent, "failed": result.failed, "pruned": len(result.invalid_tokens)}


def prune_tokens(db, tokens: list[str]) -> int:
    pruned = 0
    for token in tokens:
        for snap in db.collection_group(TOKENS).where(filter=FieldFilter("fcm_token", "==", token)).stream():
            snap.reference.delete()
            pruned += 1
    if pruned:
        log.info("invalid push tokens pruned", count=pruned)
    return pruned


# ---- FlutterFlow: addFcmToken ------------------------------------------------------

def token_doc_id(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def user_path_uid(user_doc_path: str) -> str:
    parts = user_doc_path.strip("/").split("/")
    if len(parts) != 2 or parts[0] != USERS or not parts[1]:
        raise InvalidArgumentError.for_field("userDocPath", "must look like users/{uid}")
    return parts[1]


# How many of a user's older token documents one addFcmToken reads to delete the surplus: a
# user has at most PUSH_TOKENS_PER_USER once registered here; more are documents written
# directly before the rules refused that, removed this many a call.
TRIM_READ_MAX = 500


def add_fcm_token(db, *, caller_uid: str, user_doc_path: str, token: str, device_type: str) -> str:
    """FlutterFlow's addFcmToken: the caller's token, moved away from any other user. The user
    keeps their newest ``config.PUSH_TOKENS_PER_USER`` token documents (by ``created_at``, this
    one always among them): the older ones are deleted (``trim_tokens``)."""
    uid = user_path_uid(user_doc_path)
    if uid != caller_uid:
        raise PermissionDeniedError("userDocPath is not your user document.")
    moved = 0
    for snap in db.collection_group(TOKENS).where(filter=FieldFilter("fcm_token", "==", token)).stream():
        if snap.reference.parent.parent.id != uid:
            snap.reference.delete()
            moved += 1
    ref = db.collection(USERS).document(uid).collection(TOKENS).document(token_doc_id(token))
    ref.set(FcmTokenDoc.fields(fcm_token=token, device_type=device_type, created_at=gcf.SERVER_TIMESTAMP), merge=True)
    if moved:
        log.info("push token moved from another user", moved=moved)
    trim_tokens(db, uid, registered=ref.id)
    return ref.id


def trim_tokens(db, uid: str, *, registered: str, keep: int = config.PUSH_TOKENS_PER_USER) -> int:
    """Deletes the user's token documents beyond their newest ``keep`` by ``created_at`` (at
    most ``TRIM_READ_MAX`` read a call). A document without ``created_at`` (only a direct write
    from before the rules refused them could lack it) is not found by this query and stays."""
    query = (db.collection(USERS).document(uid).collection(TOKENS)
             .order_by("created_at", direction="DESCENDING").limit(keep + TRIM_READ_MAX))
    snaps = list(query.select(["created_at"]).stream())
    by_id = {snap.id: snap.reference for snap in snaps}
    extra = devices.surplus([snap.id for snap in snaps], keep, registered)
    for doc_id in extra:
        by_id[doc_id].delete()
    if extra:
        log.info("older push tokens of the user deleted", deleted=len(extra))
    return len(extra)


# ---- erasure ------------------------------------------------------------------------

def erase(db, uid: str) -> None:
    from flowsuite.core.erasure import delete_query  # noqa: PLC0415

    user_ref = db.collection(USERS).document(uid)
    for name in (INBOX, TOKENS, SETTINGS):
        delete_query(db, user_ref.collection(name))
    db.collection("push_rate_limits").document(uid).delete()
    db.collection(SUPPRESSIONS).document(uid).delete()
