"""Ops service code: plain functions over the kernel, clients passed in."""

from __future__ import annotations

import uuid

from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import bus, errors, events, idempotency, log, settings
from flowsuite.core.errors import InvalidArgumentError
from flowsuite.core.kernel_documents import DeadLetterDoc, EventDoc
from flowsuite.ops.documents import ProbeDoc
from flowsuite.ops.events import ProbeSent

PROBES = "ops_probes"
IDEMPOTENCY_RECORDS = idempotency.COLLECTION


def send_probe(db, *, note: str, correlation_id: str) -> tuple[str, str]:
    probe_id = uuid.uuid4().hex
    batch = db.batch()
    batch.set(db.collection(PROBES).document(probe_id), ProbeDoc.new(probe_id=probe_id, received=0, note=note))
    envelope = events.publish(batch, ProbeSent(probe_id=probe_id, note=note), subject=f"{PROBES}/{probe_id}",
                              correlation_id=correlation_id, db=db)
    batch.commit()
    return probe_id, envelope.id


def record_probe(db, txn, event: events.Event[ProbeSent]) -> None:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    ref = db.collection(PROBES).document(event.data.probe_id)
    txn.set(ref, ProbeDoc.fields(received=gcf.Increment(1), received_time=gcf.SERVER_TIMESTAMP,
                                 last_event_id=event.id, correlation_id=event.correlation_id), merge=True)


def run_sweep(db) -> dict[str, int]:
    """The sweep's counts go to ops_state/sweep only: its own bookkeeping is not a bus event
    (``ops.sweep_finished`` is no longer published; its contract stays for old documents)."""
    return bus.sweep(db=db)


def list_dead_letters(db, *, limit: int, subscriber: str | None) -> list[dict]:
    query = db.collection(bus.DEAD_LETTERS).where(filter=FieldFilter("status", "==", "dead"))
    if subscriber:
        query = query.where(filter=FieldFilter("subscriber", "==", subscriber))
    query = query.order_by("created_time", direction="DESCENDING").limit(limit)
    return [{**snap.to_dict(), "id": snap.id} for snap in query.stream()]


def replay(db, *, ids: list[str], replay_all: bool) -> list[tuple[str, str]]:
    if not ids and not replay_all:
        raise InvalidArgumentError.for_field("ids", "name dead letters to replay, or set all", "missing")
    if replay_all:  # a letter whose replay moves money is replayed only by its id (errors.MANUAL_REPLAY)
        ids = [d["id"] for d in list_dead_letters(db, limit=500, subscriber=None) if not d.get("manual_replay")]
    return [(dead_id, _replay_one(db, dead_id)) for dead_id in ids]


def _replay_one(db, dead_id: str) -> str:
    """One replay: a failure (a missing subscriber, contention) is that letter's outcome,
    never a stop for the others."""
    try:
        return bus.replay_dead_letter(dead_id, db=db)
    except Exception as exc:  # noqa: BLE001
        log.error("replay failed", dead_letter_id=dead_id, error=f"{type(exc).__name__}: {exc}"[:300])
        return "error"


DIAGNOSTIC_ERRORS = {
    cls.code: cls
    for cls in (
        errors.InvalidArgumentError, errors.UnauthenticatedError, errors.PermissionDeniedError,
        errors.NotFoundError, errors.FailedPreconditionError, errors.AlreadyExistsError,
        errors.ResourceExhaustedError,
    )
}


def diagnose(code: str) -> None:
    if not settings.is_emulator():
        raise errors.FailedPreconditionError("Diagnostics run on the emulators only.")
    if code == "internal":
        raise RuntimeError("diagnostic failure with a secret detail: sk_live_do_not_leak")
    raise DIAGNOSTIC_ERRORS[code](f"diagnostic {code}")


REDACTED = "deleted-user"
PERSONAL_FIELDS = ("email", "display_name")


def erase(db, uid: str, *, event_id: str) -> None:
    """The kernel's part: stored callable answers go; events and dead letters that name
    the user are redacted, once every other domain has erased its own data (they read
    the uid from the user_deleted event, so it is redacted last)."""
    from flowsuite.core.erasure import all_erasers, delete_query  # noqa: PLC0415
    from flowsuite.core.errors import RetryLaterError  # noqa: PLC0415

    others = [f"{domain}_on_user_deleted" for domain in all_erasers() if domain != "ops"]
    refs = [db.collection(bus.DELIVERIES).document(bus.delivery_id(event_id, name)) for name in others]
    found = {d.id: (d.get("status") if d.exists else None) for d in db.get_all(refs)}
    waiting_for, dead = erasure_wait({ref.id: found.get(ref.id) for ref in refs})
    if waiting_for:
        # Bounded: after ERASURE_MAX_WAIT_HOURS this delivery is a dead letter too. A dead
        # eraser waits for an admin's replay, after which this one finishes on its own.
        raise RetryLaterError(
            f"waiting for the other erasers: {waiting_for}" + (f"; dead letters to replay: {dead}" if dead else ""),
            max_wait_seconds=settings.int_value(settings.ERASURE_MAX_WAIT_HOURS) * 3600)
    delete_query(db, db.collection(idempotency.COLLECTION).where(filter=FieldFilter("uid", "==", uid)))
    for snap in db.collection_group(events.EVENTS).where(filter=FieldFilter("data.uid", "==", uid)).stream():
        snap.reference.update(EventDoc.fields(redaction(snap.to_dict(), uid)))
    for snap in db.collection(bus.DEAD_LETTERS).where(filter=FieldFilter("envelope.data.uid", "==", uid)).stream():
        snap.reference.update(DeadLetterDoc.fields(
            {f"envelope.{k}": v for k, v in redaction(snap.get("envelope"), uid).items()}))


def erasure_wait(statuses: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """The other erasers the last one waits for, and those of them that are dead letters
    (an admin replays them), from their delivery statuses. Nothing to wait for: it runs. Pure."""
    pending = sorted(name for name, status in statuses.items() if status != bus.PROCESSED)
    return pending, [name for name in pending if statuses[name] == bus.DEAD]


def redaction(envelope: dict, uid: str) -> dict:
    """The field updates that take a user out of an event envelope. Pure."""
    data = dict(envelope.get("data") or {})
    data["uid"] = REDACTED
    for field in PERSONAL_FIELDS:
        if field in data:
            data[field] = None
    subject = str(envelope.get("subject", "")).replace(uid, REDACTED)
    return {"data": data, "subject": subject, "redacted": True}


def is_admin_request(authorization: str) -> bool:
    """A Bearer Firebase ID token whose role claim is admin, not expired, and not revoked
    (checked only for an admin's token: no Firestore read, one Auth lookup)."""
    import time  # noqa: PLC0415

    from flowsuite.core import clients  # noqa: PLC0415
    from flowsuite.core.callables import check_not_revoked  # noqa: PLC0415

    if not authorization.startswith("Bearer "):
        return False
    try:
        claims = clients.auth().verify_id_token(authorization.removeprefix("Bearer ").strip(), app=clients.app())
        if claims.get("role") != "admin" or not isinstance(claims.get("exp"), (int, float)) or claims["exp"] < time.time():
            return False
        check_not_revoked(claims["uid"], claims)
    except Exception:  # noqa: BLE001 - any invalid or revoked token is simply not an admin
        return False
    return True
