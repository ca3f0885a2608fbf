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
from flowsuite.core.bus.subscribe import all_subscribers, subscribers_of
from flowsuite.core.kernel_documents import DeadLetterDoc, DeliveryDoc, OpsStateDoc


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
    spec = all_subscribers().get(subscriber_name)
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
                snap.get("subscriber"), snap.get("event_path"), via="sweep", db=db, at=now), counts)  # each on its own

    # Lost events: only types that have subscribers, each in its own collection, newest
    # first, from where the last sweep stopped (ops_state/sweep.lost_scan).
    state_ref = db.collection(OPS_STATE).document("sweep")
    scan = (state_ref.get().to_dict() or {}).get("lost_scan") or {}
    lost_before = now - dt.timedelta(seconds=settings.BUS_LOST_AFTER_SECONDS)
    window_start = now - dt.timedelta(hours=settings.BUS_LOST_WINDOW_HOURS)
    for type_name in sorted({s.event_type.name for s in all_subscribers().values()}):
        subs = subscribers_of(type_name)
        collection = db.collection(events.EVENT_TYPES[type_name].collection)
        remaining: list[tuple[dt.datetime, dt.datetime]] = []
        for lo, hi in lost_intervals(scan.get(type_name), window_start=window_start, lost_before=lost_before):
            query = (collection.where(filter=FieldFilter("time", ">", lo)).where(filter=FieldFilter("time", "<=", hi))
                     .order_by("time", direction="DESCENDING").limit(limit))
            page = list(query.stream())
            if len(page) == limit:
                remaining.append((lo, page[-1].get("time")))  # older ones wait for the next sweep
            for snap in page:
                errors = counts["errors"]
                try:
                    _check_lost(db, snap, subs, counts, now)
                except Exception as exc:  # noqa: BLE001 - one unreadable event never stops the sweep
                    counts["errors"] += 1
                    log.warning("sweep could not check an event", event_id=snap.id, error=error_text(exc))
                if counts["errors"] > errors and isinstance(snap.get("time"), dt.datetime):
                    # Its redelivery failed (contention, say) and wrote no delivery record: the
                    # cursor moves on, so the event stays in the backlog for the next sweep.
                    remaining.append(retry_range(snap.get("time")))
        scan[type_name] = scan_state(remaining, lost_before)

    state_ref.set(OpsStateDoc.fields(last_sweep_time=gcf.SERVER_TIMESTAMP, last_counts=counts, lost_scan=scan),
                  merge=True)
    # What is still waiting after this sweep: the "oldest pending age" alert's log-based
    # metric reads this field (docs/production.md, "Monitoring and alerts").
    log.info("sweep finished", **counts, oldest_pending_age_seconds=oldest_pending_age(db, now))
    return counts


def oldest_pending_age(db, now: dt.datetime) -> float | None:
    """Seconds since the event of the oldest delivery still pending (processing or failed) was
    published; 0 when none is. One read (an index on status, event_time). None when the query
    fails: the sweep never fails for its own metric."""
    from google.cloud.firestore_v1.base_query import FieldFilter  # noqa: PLC0415

    query = (db.collection(DELIVERIES).where(filter=FieldFilter("status", "in", [PROCESSING, FAILED]))
             .order_by("event_time").limit(1))
    try:
        oldest = [snap.get("event_time") for snap in query.stream()]
    except Exception as exc:  # noqa: BLE001
        log.warning("sweep could not read the oldest pending delivery", error=error_text(exc))
        return None
    return pending_age(oldest[0] if oldest else None, now)


def pending_age(event_time: dt.datetime | None, now: dt.datetime) -> float:
    """Seconds ``event_time`` is before ``now`` (0 for none, never negative: clocks differ). Pure."""
    return round(max(0.0, (now - event_time).total_seconds()), 1) if event_time else 0.0


def lost_intervals(state: dict | None, *, window_start: dt.datetime,
                   lost_before: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """The time ranges ``(lo, hi]`` of one event type the sweep still has to check, newest
    first: what arrived since the last sweep checked up to ``checked_to``, then the backlog a
    full page left behind. Nothing older than the window. Pure."""
    state = state or {}
    checked_to = state.get("checked_to")
    newest_lo = max(window_start, checked_to) if checked_to else window_start
    out = [(newest_lo, lost_before)] if newest_lo < lost_before else []
    lo, hi = state.get("backlog_lo"), state.get("backlog_hi")
    if lo is not None and hi is not None and max(lo, window_start) < hi:
        out.append((max(lo, window_start), min(hi, newest_lo)))
    return [(a, b) for a, b in out if a < b]


def retry_range(event_time: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The ``(lo, hi]`` range that holds exactly the instant ``event_time`` (Firestore keeps
    microseconds), kept in the backlog so the next sweep checks that event again. Pure."""
    return event_time - dt.timedelta(microseconds=1), event_time


def scan_state(remaining: list[tuple[dt.datetime, dt.datetime]], checked_to: dt.datetime) -> dict:
    """What the next sweep resumes from: everything up to ``checked_to`` was seen except the
    ``remaining`` ranges, kept as one backlog range (a range seen twice costs reads, never a
    delivery). Pure."""
    if not remaining:
        return {"checked_to": checked_to, "backlog_lo": None, "backlog_hi": None}
    return {"checked_to": checked_to, "backlog_lo": min(lo for lo, _ in remaining),
            "backlog_hi": max(hi for _, hi in remaining)}


def _check_lost(db, snap, subs, counts: dict[str, int], now: dt.datetime) -> None:
    doc = snap.to_dict()
    deliveries = db.collection(DELIVERIES)
    refs = [deliveries.document(delivery_id(snap.id, s.name)) for s in subs]
    recorded = {d.id for d in db.get_all(refs) if d.exists}  # get_all answers in any order
    for spec in subs:
        if delivery_id(snap.id, spec.name) not in recorded:
            counts["lost"] += 1
            counts["processed"] += _sweep_one(lambda spec=spec: deliver(spec, doc, via="sweep", db=db, at=now), counts)


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
            DeliveryDoc.fields(status=FAILED, attempts=0, next_attempt_at=now, updated_time=now, failing_since=None,
                               replays=gcf.Increment(1)),
        )
        txn.update(letter_ref, DeadLetterDoc.fields(status="replayed", replayed_time=now))
        return letter.get("subscriber"), letter.get("event_path")

    target = reset(db.transaction())
    if target is None:
        return "not_dead"
    outcome = redeliver(*target, via="replay", db=db)
    letter_ref.update(DeadLetterDoc.fields(replay_outcome=outcome))
    return outcome
