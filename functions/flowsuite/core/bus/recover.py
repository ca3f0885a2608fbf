"""Recovering: scheduled retries, the sweep (due, stalled and lost deliveries) and replays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from flowsuite.core import clients, clock, events, log, settings
from flowsuite.core.bus.deliver import deliver
from flowsuite.core.bus.records import (
    DEAD_LETTERS,
    DELIVERIES,
    FAILED,
    OPS_STATE,
    PROCESSED,
    PROCESSING,
    delivery_id,
    error_text,
)
from flowsuite.core.bus.subscribe import SUBSCRIBERS, subscribers_of


class NotDueError(RuntimeError):
    """A scheduled task arrived before its time. The Cloud Tasks emulator ignores
    ``schedule_time``; raising makes the queue retry with its own backoff."""


def redeliver(subscriber_name: str, event_path: str, *, via: str, db=None, at: dt.datetime | None = None) -> str:
    db = db or clients.firestore()
    if via == "retry":
        record = db.collection(DELIVERIES).document(delivery_id(event_path.rsplit("/", 1)[-1], subscriber_name)).get()
        due_at = record.get("next_attempt_at") if record.exists else None
        if record.exists and record.get("status") == FAILED and due_at and due_at > clock.utcnow() + dt.timedelta(seconds=0.5):
            raise NotDueError(f"retry of {subscriber_name} is due at {due_at.isoformat()}")
    spec = SUBSCRIBERS.get(subscriber_name)
    if spec is None:
        log.error("redelivery for an unknown subscriber", subscriber=subscriber_name)
        return "unknown_subscriber"
    snap = db.document(event_path).get()
    if not snap.exists:
        log.error("redelivery of a missing event", subscriber=subscriber_name, event_path=event_path)
        return "missing_event"
    return deliver(spec, snap.to_dict(), via=via, db=db, at=at)


def sweep(*, db=None, now: dt.datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Retries due failures, takes over stalled deliveries, delivers lost events.

    ``now`` is the sweep's clock: what is due, stalled or lost is judged by it, and
    so is each lease it takes over.
    """
    from google.cloud import firestore as gcf  # noqa: PLC0415
    from google.cloud.firestore_v1.base_query import FieldFilter  # noqa: PLC0415

    db = db or clients.firestore()
    now = now or clock.utcnow()
    counts = {"retried": 0, "stalled": 0, "lost": 0, "processed": 0, "errors": 0}
    deliveries = db.collection(DELIVERIES)

    # Failures whose retry is due, then deliveries whose lease ran out (stalled).
    for status, field, counter in ((FAILED, "next_attempt_at", "retried"), (PROCESSING, "lease_until", "stalled")):
        query = (deliveries.where(filter=FieldFilter("status", "==", status))
                 .where(filter=FieldFilter(field, "<=", now)).limit(limit))
        for snap in query.stream():
            counts[counter] += 1
            counts["processed"] += _sweep_one(lambda snap=snap: redeliver(
                snap.get("subscriber"), snap.get("event_path"), via="sweep", db=db, at=now), counts)

    lost_before = now - dt.timedelta(seconds=settings.BUS_LOST_AFTER_SECONDS)
    window_start = now - dt.timedelta(days=2)
    recent = (
        db.collection_group(events.EVENTS)
        .where(filter=FieldFilter("time", ">=", window_start))
        .where(filter=FieldFilter("time", "<=", lost_before))
        .limit(limit * 5)
        .stream()
    )
    for snap in recent:
        doc = snap.to_dict()
        subs = subscribers_of(doc.get("type", ""))
        if not subs:
            continue
        refs = [deliveries.document(delivery_id(snap.id, s.name)) for s in subs]
        recorded = {d.id for d in db.get_all(refs) if d.exists}  # get_all answers in any order
        for spec in subs:
            if delivery_id(snap.id, spec.name) not in recorded:
                counts["lost"] += 1
                counts["processed"] += _sweep_one(lambda spec=spec, doc=doc: deliver(spec, doc, via="sweep", db=db, at=now), counts)

    db.collection(OPS_STATE).document("sweep").set(
        {"last_sweep_time": gcf.SERVER_TIMESTAMP, "last_counts": counts}, merge=True
    )
    log.info("sweep finished", **counts)
    return counts


def _sweep_one(run: Callable[[], str], counts: dict[str, int]) -> bool:
    """One redelivery of the sweep: a failure (contention, say) is counted, not fatal;
    the next sweep takes that delivery up again."""
    try:
        return run() == PROCESSED
    except Exception as exc:  # noqa: BLE001
        counts["errors"] += 1
        log.warning("sweep could not redeliver; the next sweep retries", error=error_text(exc))
        return False


def replay_dead_letter(dead_letter_id: str, *, db=None) -> str:
    """Resets a dead delivery and delivers it again now. Returns the outcome."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    db = db or clients.firestore()
    letter_ref = db.collection(DEAD_LETTERS).document(dead_letter_id)
    delivery_ref = db.collection(DELIVERIES).document(dead_letter_id)

    @gcf.transactional
    def reset(txn) -> tuple[str, str] | None:
        letter = letter_ref.get(transaction=txn)
        if not letter.exists or letter.get("status") != "dead":
            return None
        now = clock.utcnow()
        txn.update(
            delivery_ref,
            {"status": FAILED, "attempts": 0, "next_attempt_at": now, "updated_time": now, "failing_since": None,
             "replays": gcf.Increment(1)},
        )
        txn.update(letter_ref, {"status": "replayed", "replayed_time": now})
        return letter.get("subscriber"), letter.get("event_path")

    target = reset(db.transaction())
    if target is None:
        return "not_dead"
    outcome = redeliver(*target, via="replay", db=db)
    letter_ref.update({"replay_outcome": outcome})
    return outcome
