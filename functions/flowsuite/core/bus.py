"""The event bus: subscribers, recorded deliveries, retries, dead letters.

Python Firestore triggers cannot ask the platform to retry (the SDK fixes
``retry=False``) and delivery is at least once and unordered, so the bus owns
reliability:

* every (event, subscriber) pair has a delivery record, ``deliveries/{event}:{subscriber}``;
* a delivery is claimed with a lease; a transactional handler's writes and the
  ``processed`` mark commit in one transaction, so a redelivery has no effect;
* a failure is recorded (error, attempt, history) and retried with exponential
  backoff through a Cloud Task (``opsRedeliver``); the sweep
  (``sweep``: scheduled, and callable by an admin) retries what is due, takes
  over stalled deliveries whose lease expired, and delivers lost events that
  never got a delivery record;
* after ``BUS_MAX_ATTEMPTS`` the delivery is a dead letter holding the event,
  the error and the history, until an admin replays it. A "retry later"
  (``RetryLaterError``) does not use up attempts, but no failure is retried
  for longer than ``BUS_MAX_RETRY_HOURS``: then it is a dead letter too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import traceback
from collections.abc import Callable
from typing import Any

from flowsuite.core import clients, clock, events, faults, log, metering, options, settings
from flowsuite.core.errors import FlowsuiteError, RetryLaterError

DELIVERIES = "deliveries"
DEAD_LETTERS = "dead_letters"
OPS_STATE = "ops_state"
# Cloud Tasks queue ids allow letters, digits and hyphens only: no snake_case here.
REDELIVER_FUNCTION = "opsRedeliver"

PENDING, PROCESSING, PROCESSED, FAILED, DEAD = "pending", "processing", "processed", "failed", "dead"


@dataclasses.dataclass(frozen=True)
class Subscriber:
    name: str
    event_type: events.EventType
    handler: Callable[..., None]
    transactional: bool
    domain: str


SUBSCRIBERS: dict[str, Subscriber] = {}


def subscribers_of(event_type: str) -> list[Subscriber]:
    return [s for s in SUBSCRIBERS.values() if s.event_type.name == event_type]


def subscriber(event_model: type[events.EventData], *, transactional: bool = True, **trigger_options: Any):
    """Declares a subscriber of one event type; it becomes a Firestore trigger on that type only.

    A transactional handler is called as ``handler(event, txn)``: it reads with
    ``txn`` first, then writes with ``txn``; the bus adds the processed mark to the
    same transaction. A handler with effects outside Firestore (Stripe, FCM, SMTP)
    is declared ``transactional=False``, is called as ``handler(event)`` and guards
    each of those effects with ``event.once(step, perform)``.
    """

    def decorate(handler: Callable[..., None]) -> Callable:
        from firebase_functions import firestore_fn  # noqa: PLC0415

        spec = Subscriber(
            name=handler.__name__,
            event_type=event_model.event_type,
            handler=handler,
            transactional=transactional,
            domain=options.domain_of(handler.__module__),
        )
        SUBSCRIBERS[spec.name] = spec

        def trigger(event) -> None:
            snapshot = event.data
            if snapshot is None:
                return
            deliver(spec, snapshot.to_dict() or {}, via="trigger")

        trigger.__name__ = trigger.__qualname__ = spec.name
        trigger.__doc__ = handler.__doc__
        wrapped = options.trigger(firestore_fn.on_document_created, domain=spec.domain,
                                  document=spec.event_type.trigger_path, **trigger_options)(trigger)
        wrapped.__flowsuite_subscriber__ = spec
        return wrapped

    return decorate


# ---- pure helpers ------------------------------------------------------------

def backoff_seconds(attempt: int, base: float, cap: float = 3600.0, rand: Callable[[], float] = random.random) -> float:
    """Delay before attempt ``attempt + 1``: base * 2^(attempt-1), +-10% jitter, capped."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return round(delay * (0.9 + 0.2 * rand()), 3)


def delivery_id(event_id: str, subscriber_name: str) -> str:
    return f"{event_id}:{subscriber_name}"


def claim_decision(record: dict[str, Any] | None, now: dt.datetime) -> str:
    """Whether a delivery attempt may start: 'run', 'duplicate' or 'busy'. Pure."""
    if record is None:
        return "run"
    status = record.get("status")
    if status in (PROCESSED, DEAD):
        return "duplicate"
    if status == PROCESSING and record.get("lease_until") and record["lease_until"] > now:
        return "busy"
    return "run"


@dataclasses.dataclass(frozen=True)
class FailurePlan:
    """What becomes of a failed attempt: a dead letter (and why), or a retry at ``retry_at``."""

    dead: bool
    reason: str  # permanent, attempts, age, retry
    retry_at: dt.datetime | None


def failure_plan(
    *,
    attempt: int,
    failing_since: dt.datetime,
    now: dt.datetime,
    permanent: bool,
    retry_later: bool,
    max_attempts: int,
    max_age: dt.timedelta,
    base_seconds: float,
    rand: Callable[[], float] = random.random,
) -> FailurePlan:
    """Dead letter or retry, for a failed attempt. Pure.

    * a domain error (``permanent``) is dead at once: retrying will not heal it;
    * any other failure is dead after ``max_attempts`` attempts, except a "retry
      later" (``RetryLaterError``: Stripe still processing, another eraser not done),
      which does not use up attempts;
    * every failure, a "retry later" included, is dead once the delivery has been
      failing for ``max_age`` (since ``failing_since``); a retry is never scheduled
      past that deadline, so the dead letter comes on time.
    """
    if permanent:
        return FailurePlan(True, "permanent", None)
    if not retry_later and attempt >= max_attempts:
        return FailurePlan(True, "attempts", None)
    deadline = failing_since + max_age
    if now >= deadline:
        return FailurePlan(True, "age", None)
    retry_at = now + dt.timedelta(seconds=backoff_seconds(attempt, base_seconds, rand=rand))
    return FailurePlan(False, "retry", min(retry_at, deadline))


def max_failing_age(exc: BaseException) -> dt.timedelta:
    """How long a delivery failing with ``exc`` may keep being retried."""
    hours = dt.timedelta(hours=settings.int_value(settings.BUS_MAX_RETRY_HOURS))
    wait = getattr(exc, "max_wait_seconds", None) if isinstance(exc, RetryLaterError) else None
    return min(hours, dt.timedelta(seconds=wait)) if wait is not None else hours


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:1000]


# ---- delivery ----------------------------------------------------------------

def deliver(spec: Subscriber, event_doc: dict[str, Any], *, via: str, db=None, at: dt.datetime | None = None) -> str:
    """Delivers one event to one subscriber. Returns the outcome; never raises.

    Outcomes: processed, duplicate (already processed or dead), busy (another
    attempt holds the lease), failed (will be retried), dead (dead-lettered).
    ``at`` is the time the lease is judged by (the sweep's clock); default now.

    A transactional subscriber runs in one transaction with its delivery record:
    the record is read, the handler reads and writes, and the processed mark is
    written in one commit, so two attempts can never both apply it and no lease
    is needed. A subscriber with effects outside Firestore claims the delivery
    with a lease first (status ``processing``), then runs, then is marked.
    """
    db = db or clients.firestore()
    try:
        envelope = events.Envelope.model_validate(event_doc)
    except Exception as exc:  # noqa: BLE001 - a malformed event cannot be delivered
        log.error("malformed event ignored", subscriber=spec.name, error=error_text(exc))
        return "malformed"
    ref = db.collection(DELIVERIES).document(delivery_id(envelope.id, spec.name))

    with log.bind(
        domain=spec.domain,
        function=spec.name,
        correlation_id=envelope.correlation_id,
        event_id=envelope.id,
        event_type=envelope.type,
    ), metering.metered():
        timer = log.Timer()
        run = _deliver_in_transaction if spec.transactional else _deliver_with_lease
        try:
            decision, attempt = run(db, ref, spec, envelope, via, timer, at)
        except _LeasedAttemptError as failed:
            return _record_failure(db, ref, spec, envelope, via, timer, failed.__cause__, leased=failed.attempt)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
            return _record_failure(db, ref, spec, envelope, via, timer, exc)
        if decision != "run":
            log.info("delivery skipped", outcome=decision, via=via, attempt=attempt, **metering.fields())
            return decision
        log.info("delivery processed", via=via, attempt=attempt, latency_ms=timer.ms, **metering.fields())
        return PROCESSED


def _record_fields(spec: Subscriber, envelope: events.Envelope) -> dict[str, Any]:
    return {
        "subscriber": spec.name,
        "domain": spec.domain,
        "event_id": envelope.id,
        "event_type": envelope.type,
        "event_path": f"{spec.event_type.collection}/{envelope.id}",
        "correlation_id": envelope.correlation_id,
        "event_time": envelope.time,
    }


def _event(spec: Subscriber, envelope: events.Envelope, attempt: int, **extra: Any) -> events.Event:
    return events.Event(envelope=envelope, data=spec.event_type.model.model_validate(envelope.data),
                        attempt=attempt, **extra)


def _claim_read(txn, ref, now: dt.datetime) -> tuple[dict[str, Any] | None, int, str]:
    """The delivery record in ``txn``, its attempts so far, and whether this attempt may run."""
    snap = ref.get(transaction=txn)
    record = snap.to_dict() if snap.exists else None
    return record, int((record or {}).get("attempts", 0)), claim_decision(record, now)


def _deliver_in_transaction(db, ref, spec: Subscriber, envelope: events.Envelope, via: str, timer,
                            at: dt.datetime | None) -> tuple[str, int]:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    faults.maybe_fail(spec.name, db=db)

    @gcf.transactional
    def apply(txn) -> tuple[str, int]:
        record, attempts, decision = _claim_read(txn, ref, at or clock.utcnow())
        if decision != "run":
            return decision, attempts
        spec.handler(_event(spec, envelope, attempts + 1), txn)
        txn.set(ref, {
            **_record_fields(spec, envelope),
            **_processed_fields(attempts + 1, via, timer),
            "attempts": attempts + 1,
            "next_attempt_at": None,
            **({} if record else {"created_time": clock.utcnow()}),
        }, merge=True)
        return "run", attempts + 1

    return apply(db.transaction())


def _deliver_with_lease(db, ref, spec: Subscriber, envelope: events.Envelope, via: str, timer,
                        at: dt.datetime | None) -> tuple[str, int]:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    @gcf.transactional
    def claim(txn) -> tuple[str, int, dict[str, Any]]:
        now = at or clock.utcnow()
        record, attempts, decision = _claim_read(txn, ref, now)
        if decision != "run":
            return decision, attempts, {}
        txn.set(ref, {
            **_record_fields(spec, envelope),
            "status": PROCESSING,
            "attempts": attempts + 1,
            "lease_until": now + dt.timedelta(seconds=settings.BUS_LEASE_SECONDS),
            "started_time": now,
            "updated_time": now,
            "next_attempt_at": None,
            **({} if record else {"created_time": now, "history": []}),
        }, merge=True)
        return "run", attempts + 1, dict((record or {}).get("steps") or {})

    decision, attempt, steps = claim(db.transaction())
    if decision != "run":
        return decision, attempt

    step_log = _StepLog(ref)
    try:
        with log.bind(attempt=attempt):
            faults.maybe_fail(spec.name, db=db)
            spec.handler(_event(spec, envelope, attempt, steps=steps, step_log=step_log))
            ref.update({**_processed_fields(attempt, via, timer), **step_log.fields()})
    except Exception as exc:
        try:
            step_log.flush()  # what was sent stays sent for the retry
        except Exception as lost:  # noqa: BLE001 - the failure below is what is reported
            log.warning("delivery could not keep its finished steps", error=error_text(lost))
        raise _LeasedAttemptError(attempt) from exc
    return "run", attempt


class _StepLog:
    """The step results of a leased delivery (``Event.once``), kept on its record: a
    result is written before the next step's effect starts, on a failure, or with
    the processed mark, which saves a write per delivery and widens no window."""

    def __init__(self, ref) -> None:
        self.ref = ref
        self.pending: dict[str, dict[str, Any]] = {}

    def keep(self, step: str, result: dict[str, Any]) -> None:
        self.pending[step] = result

    def fields(self) -> dict[str, Any]:
        return {f"steps.{step}": result for step, result in self.pending.items()}

    def flush(self) -> None:
        if self.pending:
            self.ref.update({**self.fields(), "updated_time": clock.utcnow()})
            self.pending = {}


def _history_entry(attempt: int, via: str, outcome: str, timer: log.Timer, error: str | None = None) -> dict:
    return {"attempt": attempt, "via": via, "outcome": outcome, "at": clock.utcnow(), "duration_ms": timer.ms, "error": error}


def _processed_fields(attempt: int, via: str, timer) -> dict[str, Any]:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    now = clock.utcnow()
    return {
        "status": PROCESSED,
        "processed_time": now,
        "expires_at": now + dt.timedelta(days=30),  # TTL policy: processed marks are kept 30 days
        "updated_time": now,
        "lease_until": None,
        "last_error": None,
        "duration_ms": timer.ms,
        "history": gcf.ArrayUnion([_history_entry(attempt, via, PROCESSED, timer)]),
    }


class _LeasedAttemptError(Exception):
    """A leased attempt failed (its cause); carries the attempt number it claimed."""

    def __init__(self, attempt: int) -> None:
        super().__init__(f"attempt {attempt} failed")
        self.attempt = attempt


def _record_failure(db, ref, spec: Subscriber, envelope: events.Envelope, via: str, timer, exc,
                    *, leased: int | None = None) -> str:
    """Records a failed attempt: retried later with backoff, or dead-lettered.

    A leased attempt (``leased`` is its number) records its failure only while the
    lease is still its own. Any other failure (a transactional attempt, which wrote
    nothing; a claim that failed) is the record's next attempt, unless another
    attempt holds the lease.
    """
    from google.cloud import firestore as gcf  # noqa: PLC0415

    message = error_text(exc)
    max_attempts = settings.int_value(settings.BUS_MAX_ATTEMPTS)
    base_seconds = settings.int_value(settings.BUS_RETRY_BASE_SECONDS)
    max_age = max_failing_age(exc)
    retry_later = isinstance(exc, RetryLaterError)
    # A domain error (a refused transition, a missing document) will not heal by
    # retrying: it goes straight to the dead letters for an admin to look at.
    permanent = isinstance(exc, FlowsuiteError) and not retry_later
    now = clock.utcnow()

    @gcf.transactional
    def record(txn) -> tuple[str, int, dt.datetime | None, str | None]:
        snap = ref.get(transaction=txn)
        current = snap.to_dict() if snap.exists else None
        status = (current or {}).get("status")
        attempts = int((current or {}).get("attempts", 0))
        if status in (PROCESSED, DEAD):
            return "duplicate", attempts, None, None
        if leased is not None and (status != PROCESSING or attempts != leased):
            return "busy", attempts, None, None  # another attempt took the delivery over
        if leased is None and status == PROCESSING:
            return "busy", attempts, None, None  # another attempt holds the lease
        attempt = leased if leased is not None else attempts + 1
        failing_since = (current or {}).get("failing_since") or now
        plan = failure_plan(attempt=attempt, failing_since=failing_since, now=now, permanent=permanent,
                            retry_later=retry_later, max_attempts=max_attempts, max_age=max_age,
                            base_seconds=base_seconds)
        dead, next_at = plan.dead, plan.retry_at
        entry = _history_entry(attempt, via, DEAD if dead else FAILED, timer, message)
        txn.set(ref, {
            **_record_fields(spec, envelope),
            "status": DEAD if dead else FAILED,
            "attempts": attempt,
            "last_error": message,
            "lease_until": None,
            "next_attempt_at": next_at,
            "failing_since": failing_since,
            "updated_time": now,
            "history": gcf.ArrayUnion([entry]),
            **({} if current else {"created_time": now}),
        }, merge=True)
        if dead:
            txn.set(db.collection(DEAD_LETTERS).document(ref.id), {
                **_record_fields(spec, envelope),
                "delivery_id": ref.id,
                "envelope": envelope.model_dump(),
                "error": message,
                "attempts": attempt,
                "history": list((current or {}).get("history") or []) + [entry],
                "status": "dead",
                "dead_reason": plan.reason,
                "created_time": now,
            })
        return (DEAD if dead else FAILED), attempt, next_at, plan.reason

    outcome, attempt, next_at, reason = record(db.transaction())
    if outcome in ("duplicate", "busy"):
        log.info("delivery skipped", outcome=outcome, via=via, error=message, **metering.fields())
        return outcome
    if outcome == DEAD:
        log.error("delivery dead-lettered", via=via, attempt=attempt, reason=reason, error=message,
                  latency_ms=timer.ms,
                  **metering.fields(), traceback="".join(traceback.format_exception(exc, limit=10)))
        return DEAD
    log.warning("delivery failed; will retry", via=via, attempt=attempt, error=message, latency_ms=timer.ms,
                **metering.fields(), retry_at=next_at.isoformat() if next_at else None)
    schedule_retry(spec.name, f"{spec.event_type.collection}/{envelope.id}", next_at)
    return FAILED


def schedule_retry(subscriber_name: str, event_path: str, at: dt.datetime) -> None:
    """Enqueues a Cloud Task for the retry; the sweep covers a failed enqueue."""
    try:
        from firebase_admin.functions import TaskOptions  # noqa: PLC0415

        clients.task_queue(REDELIVER_FUNCTION).enqueue(
            {"data": {"subscriber": subscriber_name, "event_path": event_path}},
            TaskOptions(schedule_time=at),
        )
    except Exception as exc:  # noqa: BLE001 - the sweep picks the retry up
        log.warning("retry not enqueued; the sweep will retry", error=error_text(exc))


# ---- redelivery: retries, sweep, replay --------------------------------------

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
