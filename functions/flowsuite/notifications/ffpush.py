"""FlutterFlow's push documents, processed with FlutterFlow's fields and semantics.

``ff_push_notifications`` (broadcast, admins) and ``ff_user_push_notifications``
(targeted, any signed-in sender): only a document whose ``status`` is empty or
"started" is processed; an empty title or text fails; ``target_audience`` filters
by device; ``user_refs`` (comma-joined user paths) picks recipients, and a
targeted push never falls back to everyone; the data sent is
``{initialPageName, parameterData}``; the function writes back ``status``,
``num_sent`` and ``error`` (always with a reason when nothing was sent). A
``scheduled_time`` in the future is honoured to the minute through Cloud Tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from google.cloud import firestore as gcf

from flowsuite.core import clients, clock, effects, log, settings
from flowsuite.notifications import config
from flowsuite.notifications.push import PushMessage, PushSender
from flowsuite.notifications.service import TOKENS, USERS, prune_tokens

FF_PUSH = "ff_push_notifications"
FF_USER_PUSH = "ff_user_push_notifications"
RATE_LIMITS = "push_rate_limits"
SCHEDULED_FUNCTION = "notificationsSendScheduledPush"  # Cloud Tasks queue ids refuse underscores
SCHEDULE_SLACK = dt.timedelta(seconds=10)


def parse_user_refs(raw: Any) -> list[str]:
    """'users/a,/users/b' or full document paths -> ['a', 'b']. Pure."""
    if not raw:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    uids = []
    for item in items:
        path = getattr(item, "path", str(item)).strip().strip("/")
        parts = path.split("/")
        if len(parts) >= 2 and parts[-2] == USERS and parts[-1]:
            uids.append(parts[-1])
    return list(dict.fromkeys(uids))


def audience_matches(target: str | None, device_type: str | None) -> bool:
    target = (target or "All").strip().lower()
    return target in ("", "all") or (device_type or "").strip().lower() == target


def sender_uid(sender: Any) -> str | None:
    uids = parse_user_refs([sender]) if sender else []
    return uids[0] if uids else None


def _finish(ref, status: str, num_sent: int, error: str | None) -> str:
    ref.update({"status": status, "num_sent": num_sent, "error": error or "", "processed_time": gcf.SERVER_TIMESTAMP})
    log.info("flutterflow push finished", status=status, num_sent=num_sent, error=error)
    return status


def process(db, push: PushSender, collection: str, doc_id: str, *, now: dt.datetime | None = None) -> str:
    now = now or clock.utcnow()
    ref = db.collection(collection).document(doc_id)
    snap = ref.get()
    if not snap.exists:
        return "missing"
    doc = snap.to_dict()
    if (doc.get("status") or "") not in ("", "started"):
        return "skipped"
    title, text = (doc.get("notification_title") or "").strip(), (doc.get("notification_text") or "").strip()
    if not title or not text:
        return _finish(ref, "failed", 0, "notification_title and notification_text are required")
    scheduled = doc.get("scheduled_time")
    if isinstance(scheduled, dt.datetime) and scheduled > now + SCHEDULE_SLACK:
        return schedule(db, collection, doc_id, scheduled)
    if collection == FF_USER_PUSH:
        limited = rate_limited(db, sender_uid(doc.get("sender")), now)
        if limited:
            return _finish(ref, "failed", 0, limited)

    uids = parse_user_refs(doc.get("user_refs"))
    if not uids and collection == FF_USER_PUSH:
        return _finish(ref, "failed", 0, "user_refs is empty: a user push needs recipients")
    tokens = recipient_tokens(db, uids, doc.get("target_audience"))
    if not tokens:
        return _finish(ref, "failed", 0, "no recipient has a registered device for this audience")
    message = PushMessage(
        title=title, body=text,
        data={"initialPageName": str(doc.get("initial_page_name") or ""),
              "parameterData": str(doc.get("parameter_data") or "")},
        image_url=doc.get("notification_image_url") or None,
        sound=doc.get("notification_sound") or None,
    )

    def send() -> dict:
        result = push.send(tokens, message)
        prune_tokens(db, result.invalid_tokens)
        return {"sent": result.sent, "failed": result.failed, "errors": result.errors[:5]}

    outcome = effects.once(f"ffpush-{collection}-{doc_id}", send, meta={"kind": "ff_push"}, db=db)
    if outcome["sent"] == 0:
        return _finish(ref, "failed", 0, "; ".join(outcome["errors"]) or "every device token was rejected")
    return _finish(ref, "succeeded", outcome["sent"], None)


def recipient_tokens(db, uids: list[str], target_audience: str | None) -> list[str]:
    if uids:
        snaps = [s for uid in uids for s in db.collection(USERS).document(uid).collection(TOKENS).stream()]
    else:
        snaps = list(db.collection_group(TOKENS).stream())
    tokens = [s.get("fcm_token") for s in snaps
              if s.to_dict().get("fcm_token") and audience_matches(target_audience, s.to_dict().get("device_type"))]
    return list(dict.fromkeys(tokens))


def rate_limited(db, uid: str | None, now: dt.datetime) -> str | None:
    """A per-sender limit on targeted pushes. Returns the reason when over it."""
    if uid is None:
        return "sender must be the sending user's reference"
    limit = settings.int_value(config.PUSH_RATE_LIMIT)
    ref = db.collection(RATE_LIMITS).document(uid)
    window = dt.timedelta(seconds=config.PUSH_RATE_WINDOW_SECONDS)

    @gcf.transactional
    def take(txn) -> str | None:
        snap = ref.get(transaction=txn)
        state = snap.to_dict() if snap.exists else {}
        start = state.get("window_start")
        count = int(state.get("count", 0))
        if start is None or start + window <= now:
            start, count = now, 0
        if count >= limit:
            return f"rate limit: at most {limit} pushes per {config.PUSH_RATE_WINDOW_SECONDS} s per sender"
        txn.set(ref, {"window_start": start, "count": count + 1, "uid": uid})
        return None

    return take(db.transaction())


def schedule(db, collection: str, doc_id: str, at: dt.datetime) -> str:
    def enqueue() -> dict:
        from firebase_admin.functions import TaskOptions  # noqa: PLC0415

        clients.task_queue(SCHEDULED_FUNCTION).enqueue(
            {"data": {"collection": collection, "doc_id": doc_id}}, TaskOptions(schedule_time=at))
        return {"at": at.isoformat()}

    effects.once(f"ffpush-schedule-{collection}-{doc_id}", enqueue, meta={"kind": "ff_push_schedule"}, db=db)
    db.collection(collection).document(doc_id).update({"scheduled_for": at})
    log.info("flutterflow push scheduled", at=at.isoformat())
    return "scheduled"


class NotDueError(RuntimeError):
    """The task arrived before scheduled_time (the Cloud Tasks emulator ignores
    schedule_time): raising makes the queue retry it with backoff."""


def due(db, push: PushSender, collection: str, doc_id: str, *, now: dt.datetime | None = None) -> str:
    """The scheduled task: send if the time has come, else ask the queue to retry."""
    if collection not in (FF_PUSH, FF_USER_PUSH):
        return "unknown_collection"
    now = now or clock.utcnow()
    snap = db.collection(collection).document(doc_id).get()
    scheduled = snap.get("scheduled_time") if snap.exists and "scheduled_time" in snap.to_dict() else None
    if isinstance(scheduled, dt.datetime) and scheduled > now + SCHEDULE_SLACK:
        raise NotDueError(f"{collection}/{doc_id} is due at {scheduled.isoformat()}")
    return process(db, push, collection, doc_id, now=now)
