"""FlutterFlow's push documents, processed with FlutterFlow's fields and semantics.

``ff_push_notifications`` (broadcast, admins) and ``ff_user_push_notifications``
(targeted, any signed-in sender): only a document whose ``status`` is empty or
"started" is processed; an empty title or text fails; ``target_audience`` filters
by device; ``user_refs`` (comma-joined user paths) picks recipients, and a
targeted push never falls back to everyone; the data sent is
``{initialPageName, parameterData}``; the function writes back ``status``,
``num_sent`` and ``error`` (always with a reason when nothing was sent). A
``scheduled_time`` in the future is honoured to the minute through Cloud Tasks.

Targeted pushes stay targeted: every field is checked for type and length (as
``firestore.rules`` does), a push names at most ``PUSH_MAX_RECIPIENTS`` users
(more for staff and admins), and a sender's recipients per window are limited
(``PUSH_RATE_LIMIT`` counts recipients, not documents). A refused push is
``failed`` with its reason and sends nothing. A scheduled push is checked, and its
recipients charged to the sender, when it is created; a time beyond what Cloud
Tasks can hold (30 days) is refused at once.

A broadcast that names its ``sender`` (the rules make an app-written one name the caller)
is sent only while that sender's profile is ``active`` with the role ``admin``: checked when
it is created and again when a scheduled one comes due. The rules refuse a new broadcast from a
demoted, disabled or deleted admin's still-valid ID token (they read the same profile), so this
check catches a broadcast scheduled before the change, and one written past the rules. A
scheduled targeted push, due, must likewise fit the cap of its sender's role then
(``due_sender_refusal``). An anonymous account may not send a targeted push (the rules
refuse it).

Devices: a push reaches at most ``config.PUSH_TOKENS_PER_USER`` (10) devices of one user,
their newest, and only tokens of FCM's shape. Tokens are read a page at a time in document
order (a user's arrive together) and sent batch by batch as they are read, so neither memory
nor sends grow with what one user registers; a push stops before the function's timeout, in
reading as in sending (no page is read past ``PUSH_SEND_BUDGET_SECONDS``), and ends ``failed``
with the devices it reached (``send_in_batches``). A user has at most 10 token documents
(addFcmToken deletes older ones; the rules refuse direct writes). A push that raises ends
``failed`` keeping the ``num_sent`` it recorded (``fail_unexpectedly``). An instance that dies
mid-way anyway (nothing re-runs a Firestore trigger, and no sweep picks the push up) leaves
the status empty with ``num_sent`` as far as it got (written before each later batch); the
devices after that point get nothing, and none gets it twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter
from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, StringConstraints, ValidationError

from flowsuite.core import clients, clock, effects, errors, log, settings
from flowsuite.core.models import is_reserved_id
from flowsuite.notifications import config
from flowsuite.notifications.devices import (  # noqa: F401 - audience_matches, usable_token, TokenRow: ffpush's API
    DeadlinePassedError,
    TokenRow,
    audience_matches,
    batches,
    newest_per_owner,
    paged,
    past,
    token_page,
    usable_token,
    wanted,
)
from flowsuite.notifications.documents import FFPushDoc, FFUserPushDoc, PushRateLimitDoc
from flowsuite.notifications.push import PushMessage, PushMessageError, PushResult, PushSender
from flowsuite.notifications.push import check as check_message
from flowsuite.notifications.service import TOKENS, USERS, prune_tokens

FF_PUSH = "ff_push_notifications"
FF_USER_PUSH = "ff_user_push_notifications"
RATE_LIMITS = "push_rate_limits"
SCHEDULED_FUNCTION = "notificationsSendScheduledPush"  # Cloud Tasks queue ids refuse underscores
SCHEDULE_SLACK = dt.timedelta(seconds=10)
# Cloud Tasks refuses a schedule_time more than 30 days ahead; keep a margin for the time
# between the document's creation and the enqueue.
SCHEDULE_HORIZON = dt.timedelta(days=config.PUSH_SCHEDULE_HORIZON_DAYS) - dt.timedelta(minutes=10)

# The fields FlutterFlow (the app) writes, and those this module writes back.
APP_FIELDS = ("notification_title", "notification_text", "notification_image_url", "notification_sound",
              "scheduled_time", "target_audience", "initial_page_name", "parameter_data", "user_refs",
              "sender", "timestamp", "status")
SERVER_FIELDS = ("num_sent", "error", "processed_time", "scheduled_for", "admitted_time", "admitted_recipients",
                 "recipient_uids")
ROLES = ("member", "staff", "admin")


def _https(value: str) -> str:
    if value and (not value.startswith("https://") or len(value) <= len("https://") or any(c.isspace() for c in value)):
        raise ValueError("must be an https:// URL")
    return value


def _text(max_length: int):
    return Annotated[str, Strict(), StringConstraints(max_length=max_length)]


class PushRequest(BaseModel):
    """A push document's app-written fields: types and lengths, as the rules check them."""

    model_config = ConfigDict(extra="forbid", defer_build=True, arbitrary_types_allowed=True)

    notification_title: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=config.PUSH_TITLE_MAX)]
    notification_text: Annotated[str, Strict(), StringConstraints(min_length=1, max_length=config.PUSH_TEXT_MAX)]
    notification_image_url: Annotated[_text(config.PUSH_IMAGE_URL_MAX), AfterValidator(_https)] | None = None
    notification_sound: _text(config.PUSH_SOUND_MAX) | None = None
    scheduled_time: Annotated[dt.datetime, Strict()] | None = None
    target_audience: Literal[config.PUSH_AUDIENCES] | None = None  # type: ignore[valid-type]
    initial_page_name: _text(config.PUSH_PAGE_MAX) | None = None
    parameter_data: _text(config.PUSH_PARAMETER_DATA_MAX) | None = None
    user_refs: _text(config.PUSH_USER_REFS_MAX) | None = None
    sender: Any = None  # a DocumentReference (the rules check it is the sender's own)
    timestamp: Annotated[dt.datetime, Strict()] | None = None
    status: Literal["", "started"] | None = None


def check(doc: dict[str, Any]) -> tuple[PushRequest | None, str | None]:
    """The document as a request, or why it is refused. Pure: a malformed document is a
    clear failure, never a crash."""
    unknown = sorted(str(k) for k in set(doc) - set(APP_FIELDS) - set(SERVER_FIELDS))
    if unknown:
        return None, f"unknown fields: {', '.join(unknown[:5])}"
    title, text = doc.get("notification_title"), doc.get("notification_text")
    if not (isinstance(title, str) and title.strip()) or not (isinstance(text, str) and text.strip()):
        return None, "notification_title and notification_text are required"
    try:
        request = PushRequest.model_validate({k: doc[k] for k in APP_FIELDS if k in doc})
    except ValidationError as exc:
        fields = errors.validation_fields(exc)
        return None, "invalid push: " + "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return request, None


def parse_user_refs(raw: Any) -> list[str]:
    """'users/a,/users/b' or full document paths -> ['a', 'b']. Ids Firestore would refuse
    (reserved, over 128 characters) name nobody. Pure."""
    if not raw:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    uids = []
    for item in items:
        path = getattr(item, "path", str(item)).strip().strip("/")
        parts = path.split("/")
        if len(parts) >= 2 and parts[-2] == USERS and parts[-1] and len(parts[-1]) <= 128 \
                and not is_reserved_id(parts[-1]):
            uids.append(parts[-1])
    return list(dict.fromkeys(uids))


def sender_uid(sender: Any) -> str | None:
    uids = parse_user_refs([sender]) if sender else []
    return uids[0] if uids else None


def schedule_problem(scheduled: dt.datetime | None, now: dt.datetime) -> str | None:
    """A scheduled time Cloud Tasks cannot hold is refused at once. Pure."""
    if scheduled is not None and scheduled > now + SCHEDULE_HORIZON:
        return (f"scheduled_time is more than {config.PUSH_SCHEDULE_HORIZON_DAYS} days ahead: "
                "the scheduler cannot hold it (send it later, or closer to its time)")
    return None


@dataclasses.dataclass(frozen=True)
class Limits:
    """How far one sender's targeted pushes reach, by role."""

    member_cap: int
    staff_cap: int
    admin_cap: int
    rate: int  # recipients per window (members); staff and admins get at least their cap
    window_seconds: int = config.PUSH_RATE_WINDOW_SECONDS

    @classmethod
    def now(cls) -> Limits:
        return cls(settings.int_value(config.PUSH_MAX_RECIPIENTS), settings.int_value(config.PUSH_MAX_RECIPIENTS_STAFF),
                   settings.int_value(config.PUSH_MAX_RECIPIENTS_ADMIN), settings.int_value(config.PUSH_RATE_LIMIT))

    def cap(self, role: str) -> int:
        return {"admin": self.admin_cap, "staff": self.staff_cap}.get(role, self.member_cap)

    def budget(self, role: str) -> int:
        return self.rate if role not in ("staff", "admin") else max(self.rate, self.cap(role))


NO_PROFILE = "the sender has no account profile (deleted, or never signed in)"


def refusal_fields(refused: str, named: dict[str, Any]) -> dict[str, Any]:
    """What a refused push's document keeps: its recipients, and no ``sender`` when the sender
    has no profile (a deleted account's unexpired token wrote it after the erasure, which will
    not come again for it: the document must not name them). Pure."""
    return {**named, "sender": None} if refused == NO_PROFILE else named


def sender_refusal(profile: dict[str, Any] | None) -> str | None:
    """Why a targeted push's sender may not send, or None. Pure.

    Only a sender whose profile exists and is ``active`` sends. A disabled or deleted account's
    ID token stays valid for up to an hour and Firestore's rules cannot check revocation, so the
    rules let it create the document; identity's profile says what the account is now (a missing
    profile: deleted, or not signed up through the suite)."""
    if profile is None:
        return NO_PROFILE
    status = profile.get("status")
    if status != "active":
        return f"the sender's account is not active ({_shown(status, 'not completed')})"
    return None


def _shown(value: Any, missing: str) -> str:
    """A profile field as a refusal quotes it: at most 40 characters, ``missing`` when it is
    not a non-empty string."""
    return (value if isinstance(value, str) and value else missing)[:40]


def broadcast_sender_refusal(profile: dict[str, Any] | None) -> str | None:
    """Why a broadcast's sender may not send, or None. Pure.

    ``sender_refusal``, and the profile's role must be ``admin`` now: a token keeps the role it
    was issued with for up to an hour after ``identity_set_role`` demotes its holder. The rules
    check the profile too when the broadcast is written; this check holds when a scheduled one
    comes due, and for one written past the rules. The profile's ``role`` is identity's (the app
    cannot write it)."""
    refusal = sender_refusal(profile)
    if refusal:
        return refusal
    role = profile.get("role")
    if role != "admin":
        return f"the sender is no longer an admin ({_shown(role, 'no role')}): only admins may broadcast"
    return None


def role_of(profile: dict[str, Any]) -> str:
    """The profile's role, ``member`` when it holds none of ``ROLES`` (identity writes it; the
    app cannot). Pure."""
    role = profile.get("role")
    return role if role in ROLES else "member"


def cap_refusal(role: str, recipients: int, limits: Limits) -> str | None:
    """Why a push to ``recipients`` users is over the cap of ``role``, or None. Pure."""
    cap = limits.cap(role)
    if recipients > cap:
        return f"too many recipients: a push may name at most {cap} users ({recipients} named)"
    return None


def due_sender_refusal(profile: dict[str, Any] | None, recipients: int, limits: Limits) -> str | None:
    """Why a scheduled targeted push, due now, may not go out, or None. Pure.

    ``sender_refusal``, and the recipients must fit the cap of the role the sender holds now:
    the push was admitted under the role they had when they wrote it (an admin may name 1,000
    users), and a sender demoted since must not send at the old role's reach."""
    refusal = sender_refusal(profile)
    if refusal:
        return refusal
    role = role_of(profile)
    refusal = cap_refusal(role, recipients, limits)
    return f"{refusal} for the sender's role now ({role})" if refusal else None


def admission(role: str, recipients: int, state: dict[str, Any] | None, now: dt.datetime,
              limits: Limits) -> tuple[str | None, dict[str, Any]]:
    """(refusal, the limiter's new state) for a push to ``recipients`` users. Pure.

    ``state`` is the sender's ``push_rate_limits/{uid}``: ``window_start`` and ``count``,
    the recipients already reached in that window. A refused push charges nothing."""
    state = state or {}
    refusal = cap_refusal(role, recipients, limits)
    if refusal:
        return refusal, state
    start, count = state.get("window_start"), state.get("count")
    count = int(count) if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0
    window = dt.timedelta(seconds=limits.window_seconds)
    if not isinstance(start, dt.datetime) or start + window <= now:
        start, count = now, 0
    budget = limits.budget(role)
    if count + recipients > budget:
        return (f"rate limit: at most {budget} recipients per {limits.window_seconds} s per sender "
                f"({count} already reached, {recipients} more asked)"), state
    return None, {"window_start": start, "count": count + recipients}


def _finish(ref, status: str, num_sent: int, error: str | None, extra: dict[str, Any] | None = None) -> str:
    # the same fields on ff_push_notifications and ff_user_push_notifications (FFUserPushDoc extends FFPushDoc)
    ref.update(FFPushDoc.fields({"status": status, "num_sent": num_sent, "error": error or "",
                                 "processed_time": gcf.SERVER_TIMESTAMP}, extra or {}))
    log.info("flutterflow push finished", status=status, num_sent=num_sent, error=error)
    return status


def process(db, push: PushSender, collection: str, doc_id: str, *, now: dt.datetime | None = None) -> str:
    """Processes one push document (see the module's docstring)."""
    now = now or clock.utcnow()
    ref = db.collection(collection).document(doc_id)
    snap = ref.get()
    if not snap.exists:
        return "missing"
    doc = snap.to_dict()
    if not isinstance(doc.get("status") or "", str) or (doc.get("status") or "") not in ("", "started"):
        return "skipped"
    request, problem = check(doc)
    if request is None:
        return _finish(ref, "failed", 0, problem)
    problem = schedule_problem(request.scheduled_time, now)
    if problem:
        return _finish(ref, "failed", 0, problem)

    uids = parse_user_refs(request.user_refs)
    # The recipients, recorded with the first write that follows (no write of its own), so that
    # erasing an account finds every push naming it (``erase_pushes``).
    named = {"recipient_uids": uids} if uids else {}
    if collection == FF_PUSH and request.sender is not None:
        # Checked whenever the broadcast is processed: at creation, and again when a scheduled
        # one comes due (``due`` calls ``process``), for its sender may have been demoted,
        # disabled or deleted in between. A broadcast without a sender can only have been
        # written past the rules (Firebase console, Admin SDK, FlutterFlow's dashboard) by
        # someone holding the project's credentials: it is sent as it always was.
        refused = sender_now(db, sender_uid(request.sender), judge=broadcast_sender_refusal)
        if refused:
            return _finish(ref, "failed", 0, refused, refusal_fields(refused, named))
    if collection == FF_USER_PUSH:
        if not uids:
            return _finish(ref, "failed", 0, "user_refs is empty: a user push needs recipients")
        if doc.get("admitted_time") is None:  # charged once: at creation, even when scheduled
            refused = admit(db, ref, sender_uid(request.sender), len(uids), now, extra=named)
        else:  # a scheduled push, due now: its sender may have been disabled, deleted or demoted since
            limits = Limits.now()
            refused = sender_now(db, sender_uid(request.sender),
                                 judge=lambda profile: due_sender_refusal(profile, len(uids), limits))
        if refused:
            return _finish(ref, "failed", 0, refused, refusal_fields(refused, named))
    scheduled = request.scheduled_time
    if scheduled is not None and scheduled > now + SCHEDULE_SLACK:
        return schedule(db, collection, doc_id, scheduled, extra=named)

    message = PushMessage(
        title=request.notification_title.strip(), body=request.notification_text.strip(),
        data={"initialPageName": request.initial_page_name or "", "parameterData": request.parameter_data or ""},
        image_url=request.notification_image_url or None,
        sound=request.notification_sound or None,
    )

    try:
        check_message(message)
    except PushMessageError as exc:  # the message's fault: no token is touched
        return _finish(ref, "failed", 0, str(exc), named)

    outcome = effects.once(f"ffpush-{collection}-{doc_id}",
                           lambda: send_in_batches(db, push, ref, message, uids, request.target_audience),
                           meta={"kind": "ff_push"}, db=db)
    if outcome.get("stopped"):  # first: a push stopped while reading may have reached nobody yet
        return _finish(ref, "failed", outcome["sent"], outcome["stopped"], named)
    if outcome.get("devices") == 0:
        return _finish(ref, "failed", 0, "no recipient has a registered device for this audience", named)
    if outcome["sent"] == 0:
        return _finish(ref, "failed", 0, "; ".join(outcome["errors"]) or "every device token was rejected", named)
    return _finish(ref, "succeeded", outcome["sent"], None, named)


# ---- recipients' devices, read and sent a page at a time (devices.py) -----------------------

def token_rows(db, uids: list[str], *, page: int, deadline: float | None = None) -> Iterator[TokenRow]:
    """The named users' token documents, or every user's (a broadcast to everyone), in
    document-path order, read a page at a time; past ``deadline`` it raises
    ``DeadlinePassedError`` before reading another page."""
    if uids:
        for uid in uids:
            yield from paged(db.collection(USERS).document(uid).collection(TOKENS), page, deadline=deadline)
        return
    yield from paged(db.collection_group(TOKENS), page, deadline=deadline)


def recipient_batches(db, uids: list[str], target_audience: str | None, *,
                      per_user: int = config.PUSH_TOKENS_PER_USER, deadline: float | None = None) -> Iterator[list[str]]:
    """The push's devices, at most ``per_user`` a user, in batches FCM takes at once."""
    rows = wanted(token_rows(db, uids, page=token_page(), deadline=deadline), target_audience)
    return batches(newest_per_owner(rows, per_user), config.FCM_CHUNK)


def stopped_reason(elapsed: float, sent: int) -> str:
    """What a push stopped at its time says. Pure."""
    return (f"stopped after {int(elapsed)} s, before the function's time ran out: "
            f"{sent} devices reached, the remaining recipients were not")


def send_in_batches(db, push: PushSender, ref, message: PushMessage, uids: list[str], target_audience: str | None,
                    *, budget_seconds: float = config.PUSH_SEND_BUDGET_SECONDS) -> dict[str, Any]:
    """Sends a batch as soon as it is read, prunes the tokens FCM says are dead, and writes the
    devices reached so far on the push (``num_sent``, its status still empty) before each later
    batch, so that a push whose instance dies shows how far it got. It stops before the
    function's timeout (``stopped`` says why) rather than be killed with no status at all: the
    budget bounds reading too (one user's thousands of token documents, read before their
    newest are known, cannot hold the push past it), checked before each page and each batch."""
    started = time.monotonic()
    deadline = started + budget_seconds
    total = PushResult()
    stopped = None
    try:
        for batch in recipient_batches(db, uids, target_audience, deadline=deadline):
            if past(deadline, time.monotonic()):
                raise DeadlinePassedError
            if total.sent or total.failed:
                ref.update(FFPushDoc.fields({"num_sent": total.sent}))
            result = push.send(batch, message)
            prune_tokens(db, result.invalid_tokens)
            total.add(result)
    except DeadlinePassedError:
        stopped = stopped_reason(time.monotonic() - started, total.sent)
    return {"sent": total.sent, "failed": total.failed, "errors": total.errors[:5],
            "devices": total.sent + total.failed, "stopped": stopped}


def sender_now(db, uid: str | None, *,
               judge: Callable[[dict[str, Any] | None], str | None] = sender_refusal) -> str | None:
    """Why the sender may not send now (``judge`` on their profile as it is: ``sender_refusal``,
    or ``broadcast_sender_refusal`` for a broadcast), or None."""
    if uid is None:
        return "sender must be the sending user's reference"
    snap = db.collection(USERS).document(uid).get()
    return judge((snap.to_dict() or {}) if snap.exists else None)


def admit(db, push_ref, uid: str | None, recipients: int, now: dt.datetime,
          extra: dict[str, Any] | None = None) -> str | None:
    """The sender's cap and rate limit for a targeted push, charged once per document (the
    document is marked admitted in the same transaction). Returns the reason when refused: a
    sender whose profile is missing or not active is refused before anything is charged, so a
    deleted account never re-creates its ``push_rate_limits`` document. (An anonymous account,
    free to make in bulk, is refused by the rules: only its ID token says how it signed in.)"""
    if uid is None:
        return "sender must be the sending user's reference"
    limits = Limits.now()
    profile_ref = db.collection(USERS).document(uid)
    limiter_ref = db.collection(RATE_LIMITS).document(uid)

    @gcf.transactional
    def take(txn) -> str | None:
        got = {s.reference.path: s for s in txn.get_all([profile_ref, limiter_ref])}
        profile, limiter = got[profile_ref.path], got[limiter_ref.path]
        refusal = sender_refusal((profile.to_dict() or {}) if profile.exists else None)
        if refusal:
            return refusal
        role = role_of(profile.to_dict() or {})
        refusal, state = admission(role, recipients, limiter.to_dict() if limiter.exists else None, now, limits)
        if refusal:
            return refusal
        txn.set(limiter_ref, PushRateLimitDoc.new(state))
        txn.update(push_ref, FFUserPushDoc.fields({"admitted_time": now, "admitted_recipients": recipients},
                                                  extra or {}))
        return None

    return take(db.transaction())


def schedule(db, collection: str, doc_id: str, at: dt.datetime, extra: dict[str, Any] | None = None) -> str:
    """Hands the push to the scheduler (once per scheduled time). A time the scheduler refuses,
    or a queue that cannot be reached, ends the push ``failed`` with the reason: a Firestore
    trigger is never retried, so nothing may be left with an empty status."""
    ref = db.collection(collection).document(doc_id)

    def enqueue() -> dict:
        from firebase_admin.functions import TaskOptions  # noqa: PLC0415

        clients.task_queue(SCHEDULED_FUNCTION).enqueue(
            {"data": {"collection": collection, "doc_id": doc_id}}, TaskOptions(schedule_time=at))
        return {"at": at.isoformat()}

    try:
        effects.once(f"ffpush-schedule-{collection}-{doc_id}-{at.isoformat()}", enqueue,
                     meta={"kind": "ff_push_schedule"}, db=db)
    except Exception as exc:  # noqa: BLE001 - the reason goes on the document
        return _finish(ref, "failed", 0, f"the scheduler refused this push: {type(exc).__name__}: {exc}"[:500], extra)
    ref.update(FFPushDoc.fields({"scheduled_for": at}, extra or {}))
    log.info("flutterflow push scheduled", at=at.isoformat())
    return "scheduled"


def recorded_sent(doc: dict[str, Any]) -> int:
    """The devices a push already recorded as reached (``num_sent``, written between batches),
    0 when it holds no count. Pure."""
    value = doc.get("num_sent")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def fail_unexpectedly(db, collection: str, doc_id: str, exc: BaseException) -> str:
    """The last word on a push whose processing raised: ``failed`` with the reason, unless it
    finished meanwhile, keeping the ``num_sent`` it recorded before the failure (those devices
    got it)."""
    log.error("flutterflow push failed unexpectedly", error=f"{type(exc).__name__}: {exc}"[:300])
    ref = db.collection(collection).document(doc_id)
    snap = ref.get()
    if not snap.exists or (snap.to_dict().get("status") or "") not in ("", "started"):
        return "finished"
    return _finish(ref, "failed", recorded_sent(snap.to_dict()), f"could not be sent: {type(exc).__name__}: {exc}"[:500])


class NotDueError(RuntimeError):
    """The task arrived before scheduled_time (the Cloud Tasks emulator ignores
    schedule_time): raising makes the queue retry it with backoff."""


def due(db, push: PushSender, collection: str, doc_id: str, *, now: dt.datetime | None = None) -> str:
    """The scheduled task: send if the time has come, else ask the queue to retry."""
    if collection not in (FF_PUSH, FF_USER_PUSH) or not doc_id or "/" in doc_id or is_reserved_id(doc_id):
        return "unknown_collection"
    now = now or clock.utcnow()
    snap = db.collection(collection).document(doc_id).get()
    doc = snap.to_dict() if snap.exists else {}
    scheduled = doc.get("scheduled_time")
    planned = doc.get("scheduled_for")
    if (isinstance(scheduled, dt.datetime) and isinstance(planned, dt.datetime) and scheduled > planned + SCHEDULE_SLACK
            and scheduled > now + SCHEDULE_SLACK and (doc.get("status") or "") in ("", "started")):
        # moved later in the console after it was scheduled: a task for the new time (a
        # time beyond the horizon fails with its reason in process)
        if schedule_problem(scheduled, now):
            return process(db, push, collection, doc_id, now=now)
        return schedule(db, collection, doc_id, scheduled)
    if isinstance(scheduled, dt.datetime) and now + SCHEDULE_SLACK < scheduled <= now + SCHEDULE_HORIZON:
        raise NotDueError(f"{collection}/{doc_id} is due at {scheduled.isoformat()}")
    try:
        return process(db, push, collection, doc_id, now=now)
    except Exception as exc:  # noqa: BLE001 - never left with an empty status
        return fail_unexpectedly(db, collection, doc_id, exc)


# ---- erasure ------------------------------------------------------------------------

DELETE = "delete"


def without_user(raw: Any, uid: str) -> str:
    """``user_refs`` with every reference to ``uid`` taken out, the others as they were. Pure."""
    items = raw if isinstance(raw, list) else str(raw or "").split(",")
    kept = [str(getattr(item, "path", item)).strip() for item in items if parse_user_refs([item]) != [uid]]
    return ",".join(item for item in kept if item)


def erasure_of(doc: dict[str, Any], uid: str, *, targeted: bool) -> str | dict[str, Any] | None:
    """What erasing ``uid`` does to one push document: ``DELETE``, the field updates, or None. Pure.

    A targeted push the user sent is deleted (their words). The user leaves the recipients of
    any push naming them; a push left with no recipient is deleted (a broadcast with empty
    ``user_refs`` would go to everyone if it is still to be sent). A broadcast the user sent (as
    an admin) stays, without its sender; one still to be sent (a scheduled one) is ``failed``
    too, for without its sender it would pass for one written past the rules and go out."""
    sent_by_user = sender_uid(doc.get("sender")) == uid
    if targeted and sent_by_user:
        return DELETE
    updates: dict[str, Any] = {}
    recorded = doc.get("recipient_uids") if isinstance(doc.get("recipient_uids"), list) else None
    if uid in parse_user_refs(doc.get("user_refs")) or (recorded is not None and uid in recorded):
        remaining = without_user(doc.get("user_refs"), uid)
        if not parse_user_refs(remaining):
            return DELETE
        updates["user_refs"] = remaining
        if recorded is not None:
            updates["recipient_uids"] = [u for u in recorded if u != uid]
    if sent_by_user:
        updates["sender"] = None
        if not targeted and (doc.get("status") or "") in ("", "started"):
            updates.update({"status": "failed", "num_sent": 0,
                            "error": "the sender's account was deleted before it was sent"})
    return updates or None


def user_ref_forms(db, uid: str) -> list[Any]:
    """How a push document may name a user: FlutterFlow's ``users/{uid}`` (DocumentReference.path),
    with a leading slash, a full document name, and the reference itself (``sender``)."""
    path = f"{USERS}/{uid}"
    return [path, f"/{path}", f"projects/{settings.project_id()}/databases/(default)/documents/{path}",
            db.collection(USERS).document(uid)]


def erase_pushes(db, uid: str) -> dict[str, int]:
    """Erases a deleted user from FlutterFlow's push documents (see ``erasure_of``). They are
    found by ``sender``, by the recipients recorded when a push is processed
    (``recipient_uids``), and, for documents never processed, by a ``user_refs`` naming them
    alone; a multi-recipient push never processed keeps naming them (nothing can search inside
    the string). Each document changes in its own transaction."""
    counts = {"deleted": 0, "updated": 0}
    forms = user_ref_forms(db, uid)
    for collection in (FF_USER_PUSH, FF_PUSH):
        col = db.collection(collection)
        found: dict[str, Any] = {}
        for query in (col.where(filter=FieldFilter("sender", "in", forms)),
                      col.where(filter=FieldFilter("recipient_uids", "array_contains", uid)),
                      col.where(filter=FieldFilter("user_refs", "in", forms[:3]))):
            for snap in query.stream():
                found[snap.id] = snap.reference
        for ref in found.values():
            outcome = _erase_from(db, ref, uid, targeted=collection == FF_USER_PUSH)
            if outcome == DELETE:
                counts["deleted"] += 1
            elif outcome:
                counts["updated"] += 1
    if any(counts.values()):
        log.info("flutterflow push documents erased", **counts)
    return counts


def _erase_from(db, ref, uid: str, *, targeted: bool) -> str | dict[str, Any] | None:
    @gcf.transactional
    def erase(txn) -> str | dict[str, Any] | None:
        snap = ref.get(transaction=txn)
        if not snap.exists:
            return None
        change = erasure_of(snap.to_dict(), uid, targeted=targeted)
        if change == DELETE:
            txn.delete(ref)
        elif change:  # user_refs, recipient_uids, sender: fields of both kinds of push
            txn.update(ref, FFUserPushDoc.fields(change) if targeted else FFPushDoc.fields(change))
        return change

    return erase(db.transaction())
