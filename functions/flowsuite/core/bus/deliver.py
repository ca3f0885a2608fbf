"""Delivering one event to one subscriber, and recording a failure for a retry or a dead letter.

A transactional subscriber runs in one transaction with its delivery record; a
subscriber with effects outside Firestore claims the delivery with a lease and a
holder token first, keeps each effect's result on the record as soon as it is
done, starts no effect past its lease's deadline, and writes its processed mark
(or its failure) only while its token still holds the record.
A failure is recorded (error, attempt, history) and retried with backoff through a
Cloud Task (``opsRedeliver``), or dead-lettered (``records.failure_plan``).
"""

from __future__ import annotations

import datetime as dt
import traceback
from typing import TYPE_CHECKING, Any

from flowsuite.core import claims, clients, clock, events, faults, log, metering, settings, tracing
from flowsuite.core.bus.records import (
    DEAD,
    DEAD_LETTERS,
    DELIVERIES,
    FAILED,
    LEASE_LOST,
    PROCESSED,
    PROCESSING,
    REDELIVER_FUNCTION,
    SHAPE,
    claim_decision,
    delivery_id,
    error_text,
    failure_plan,
    max_failing_age,
)
from flowsuite.core.errors import FlowsuiteError, RetryLaterError, manual_replay
from flowsuite.core.kernel_documents import DeadLetterDoc, DeliveryDoc

if TYPE_CHECKING:  # pragma: no cover
    from flowsuite.core.bus.subscribe import Subscriber


def deliver(spec: Subscriber, event_doc: dict[str, Any], *, via: str, db=None, at: dt.datetime | None = None) -> str:
    """Delivers one event to one subscriber. Returns the outcome; never raises.

    Outcomes: processed, duplicate (already processed or dead), busy (another
    attempt holds the lease), failed (will be retried), dead (dead-lettered),
    lease_lost (this attempt outlived its lease: it stopped before an effect, or
    another attempt took the delivery over and this one's outcome was not written).
    ``at`` is the time an existing lease is judged by (the sweep's clock); default
    now. A lease this attempt takes always starts at the real clock.

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
    ), metering.metered(), tracing.span(spec.name, parent=envelope.trace_context, entry=True, kind="delivery",
                                        via=via) as span:
        timer = log.Timer()
        run = _deliver_in_transaction if spec.transactional else _deliver_with_lease
        try:
            decision, attempt = run(db, ref, spec, envelope, via, timer, at)
        except _LeasedAttemptError as failed:
            span.status = "error"
            return _record_failure(db, ref, spec, envelope, via, timer, failed.__cause__, leased=failed.attempt,
                                   holder=failed.holder)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded and retried
            span.status = "error"
            return _record_failure(db, ref, spec, envelope, via, timer, exc)
        if decision == LEASE_LOST:
            return LEASE_LOST  # _deliver_with_lease said why
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
    return events.Event(envelope=envelope, data=events.data_of(spec.event_type, envelope), attempt=attempt,
                        **extra)


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
        txn.set(ref, DeliveryDoc.fields({
            **_record_fields(spec, envelope),
            **_processed_fields(attempts + 1, via, timer),
            "attempts": attempts + 1,
            "next_attempt_at": None,
            **({} if record else {"created_time": clock.utcnow()}),
        }), merge=True)
        return "run", attempts + 1

    return apply(db.transaction())


def _deliver_with_lease(db, ref, spec: Subscriber, envelope: events.Envelope, via: str, timer,
                        at: dt.datetime | None) -> tuple[str, int]:
    def fields(record: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
        return {
            **_record_fields(spec, envelope),
            "attempts": int((record or {}).get("attempts", 0)) + 1,
            "started_time": now,
            "updated_time": now,
            "next_attempt_at": None,
            **({} if record else {"created_time": now, "history": []}),
        }

    claim = claims.claim(db, ref, SHAPE, document=DeliveryDoc, lease_seconds=settings.BUS_LEASE_SECONDS,
                         fields=fields, merge=True, now=at)
    attempts = int((claim.record or {}).get("attempts", 0))
    if claim.decision != claims.RUN:
        return ("duplicate" if claim.decision == claims.DONE else claim.decision), attempts
    attempt, steps = attempts + 1, dict((claim.record or {}).get("steps") or {})

    step_log = _StepLog(ref, deadline=claims.effect_deadline(claim.lease_until))
    try:
        with log.bind(attempt=attempt):
            faults.maybe_fail(spec.name, db=db)
            spec.handler(_event(spec, envelope, attempt, steps=steps, step_log=step_log))
            written, current = claims.finish(db, ref, SHAPE, claim.holder,
                                             {**_processed_fields(attempt, via, timer), **step_log.fields()},
                                             document=DeliveryDoc)
    except claims.LeaseLostError as exc:
        _keep_steps(step_log)
        log.warning("delivery stopped: its lease ran out before its next effect", via=via, attempt=attempt,
                    outcome=LEASE_LOST, error=error_text(exc), latency_ms=timer.ms, **metering.fields())
        return LEASE_LOST, attempt
    except Exception as exc:
        _keep_steps(step_log)  # what was sent stays sent for the retry
        raise _LeasedAttemptError(attempt, claim.holder) from exc
    if not written:
        # A late finisher: its lease ran out and another attempt took the delivery over (or it
        # was processed, dead-lettered or reset meanwhile). That attempt's outcome stands.
        log.warning("delivery finished after its lease was taken over; its processed mark was not written",
                    via=via, attempt=attempt, outcome=LEASE_LOST, latency_ms=timer.ms,
                    record_status=(current or {}).get("status"), record_attempts=(current or {}).get("attempts"),
                    **metering.fields())
        return LEASE_LOST, attempt
    return "run", attempt


def _keep_steps(step_log: _StepLog) -> None:
    try:
        step_log.flush()
    except Exception as lost:  # noqa: BLE001 - the failure being handled is what is reported
        log.warning("delivery could not keep its finished steps", error=error_text(lost))


class _StepLog:
    """The step results of a leased delivery (``Event.once``), kept on its record as soon as
    each effect is done (one write per step): an attempt that takes the delivery over, after
    this one crashed or outlived its lease, finds every effect that finished and does not
    repeat it. Before each effect, ``before`` refuses to start one past the lease's deadline."""

    def __init__(self, ref, *, deadline: dt.datetime) -> None:
        self.ref = ref
        self.deadline = deadline
        self.pending: dict[str, dict[str, Any]] = {}

    def before(self, step: str) -> None:
        if clock.utcnow() >= self.deadline:
            raise claims.LeaseLostError(f"step {step} not started: the lease's deadline "
                                        f"{self.deadline.isoformat()} has passed")
        self.flush()

    def keep(self, step: str, result: dict[str, Any]) -> None:
        self.pending[step] = result
        self.flush()  # a failed write stays pending: the failure path and the processed mark retry it

    def fields(self) -> dict[str, Any]:
        return {f"steps.{step}": result for step, result in self.pending.items()}

    def flush(self) -> None:
        if self.pending:
            self.ref.update(DeliveryDoc.fields(self.fields(), updated_time=clock.utcnow()))
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
        # The processed attempt's span: the parent of the events it published (the console's
        # trace waterfall nests them under it by ``trace.span_id``).
        "trace": tracing.stored(),
    }


class _LeasedAttemptError(Exception):
    """A leased attempt failed (its cause); carries the attempt number and holder token it claimed."""

    def __init__(self, attempt: int, holder: str | None) -> None:
        super().__init__(f"attempt {attempt} failed")
        self.attempt = attempt
        self.holder = holder


def _record_failure(db, ref, spec: Subscriber, envelope: events.Envelope, via: str, timer, exc,
                    *, leased: int | None = None, holder: str | None = None) -> str:
    """Records a failed attempt: retried later with backoff, or dead-lettered.

    A leased attempt (``leased`` is its number, ``holder`` its token) records its
    failure only while its token still holds the record. Any other failure (a
    transactional attempt, which wrote nothing; a claim that failed) is the
    record's next attempt, unless another attempt holds the lease.
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
        if status in SHAPE.done:
            return "duplicate", attempts, None, None
        if leased is not None and not claims.holds(SHAPE, current, holder):
            return LEASE_LOST, attempts, None, None  # another attempt took the delivery over
        if leased is None and status == PROCESSING:
            return "busy", attempts, None, None  # another attempt holds the lease
        attempt = leased if leased is not None else attempts + 1
        failing_since = (current or {}).get("failing_since") or now
        plan = failure_plan(attempt=attempt, failing_since=failing_since, now=now, permanent=permanent,
                            retry_later=retry_later, max_attempts=max_attempts, max_age=max_age,
                            base_seconds=base_seconds)
        dead, next_at = plan.dead, plan.retry_at
        entry = _history_entry(attempt, via, DEAD if dead else FAILED, timer, message)
        txn.set(ref, DeliveryDoc.fields({
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
        }), merge=True)
        if dead:
            txn.set(db.collection(DEAD_LETTERS).document(ref.id), DeadLetterDoc.new({
                **_record_fields(spec, envelope),
                "delivery_id": ref.id,
                "envelope": envelope.model_dump(),
                "error": message,
                "attempts": attempt,
                "history": list((current or {}).get("history") or []) + [entry],
                "status": "dead",
                "dead_reason": plan.reason,
                "created_time": now,
                **({"manual_replay": True} if manual_replay(exc) else {}),
            }))
        return (DEAD if dead else FAILED), attempt, next_at, plan.reason

    outcome, attempt, next_at, reason = record(db.transaction())
    if outcome == LEASE_LOST:
        log.warning("delivery failed after its lease was taken over; its failure was not written",
                    outcome=outcome, via=via, attempt=leased, error=message, **metering.fields())
        return outcome
    if outcome in ("duplicate", "busy"):
        log.info("delivery skipped", outcome=outcome, via=via, error=message, **metering.fields())
        return outcome
    # An exception no domain raised on purpose (a bug, an outage) is an Error Reporting event.
    unexpected = not isinstance(exc, FlowsuiteError)
    if outcome == DEAD:
        if unexpected:
            log.report("delivery dead-lettered", exc, via=via, attempt=attempt, reason=reason, latency_ms=timer.ms,
                       **metering.fields())
        else:
            log.error("delivery dead-lettered", via=via, attempt=attempt, reason=reason, error=message,
                      latency_ms=timer.ms,
                      **metering.fields(), traceback="".join(traceback.format_exception(exc, limit=10)))
        return DEAD
    retry_at = next_at.isoformat() if next_at else None
    if unexpected:
        log.report("delivery failed; will retry", exc, via=via, attempt=attempt, latency_ms=timer.ms,
                   **metering.fields(), retry_at=retry_at)
    else:
        log.warning("delivery failed; will retry", via=via, attempt=attempt, error=message, latency_ms=timer.ms,
                    **metering.fields(), retry_at=retry_at)
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
