"""Documents the kernel writes: events, deliveries, dead letters, idempotency records, effects
and the sweep's state.

The ops domain owns them (DESIGN: ops holds ``events``, deliveries and dead letters through the
kernel), so ``docs/collections.md`` names ops as their owner; they are declared here because the
kernel writes them through these models and imports no domain.
"""

from typing import Any

from flowsuite.core.documents import Document, Timestamp, collection


@collection("topics/{event_type}/events/{event_id}", read="admins", domain="ops",
            write="the publishing domain, in its transaction")
class EventDoc(Document):
    """An event envelope (see docs/events.md)."""

    id: str
    type: str
    source: str
    subject: str
    time: Timestamp
    correlation_id: str
    schema_version: int
    data: dict[str, Any]
    # the publisher's trace: trace_id, span_id (the deliveries' parent), sampled, name (the publishing span's)
    trace: dict[str, Any] | None = None
    redacted: bool = False  # the user it named was deleted: uid and personal fields redacted
    expires_at: Timestamp | None = None  # TTL: events are kept EVENT_TTL_DAYS (30)


@collection("deliveries/{event_id}:{subscriber}", read="admins", write="the bus", domain="ops")
class DeliveryDoc(Document):
    """One subscriber's delivery of one event: status, attempts, lease, history."""

    subscriber: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    lease_until: Timestamp | None
    holder: str | None = None  # the token of the leased attempt that took it last (only it writes the outcome)
    next_attempt_at: Timestamp | None
    last_error: str | None
    correlation_id: str
    history: list[dict[str, Any]]
    steps: dict[str, Any] = {}  # results of effects outside Firestore (Event.once), kept across attempts
    failing_since: Timestamp | None = None  # the first failure since the last replay: bounds retries by age
    expires_at: Timestamp | None = None  # TTL policy: a processed mark is kept 30 days
    domain: str  # the subscriber's domain
    event_path: str  # topics/{type}/events/{id}
    event_time: Timestamp
    created_time: Timestamp
    updated_time: Timestamp
    started_time: Timestamp | None = None  # the last leased attempt's start
    processed_time: Timestamp | None = None
    duration_ms: float | None = None  # the processed attempt's
    trace: dict[str, Any] | None = None  # the processed attempt's span (trace_id, span_id, sampled): its events' parent
    replays: int = 0  # an admin's replays of it as a dead letter


@collection("dead_letters/{event_id}:{subscriber}", read="admins", write="the bus; replayed by ops", domain="ops")
class DeadLetterDoc(Document):
    """A delivery that ran out of attempts: the event, the error, the history."""

    subscriber: str
    event_type: str
    envelope: dict[str, Any]
    error: str
    attempts: int
    status: str  # dead, then replayed
    dead_reason: str  # permanent (a domain error), attempts (BUS_MAX_ATTEMPTS), age (BUS_MAX_RETRY_HOURS)
    created_time: Timestamp
    delivery_id: str
    domain: str
    event_id: str
    event_path: str
    event_time: Timestamp
    correlation_id: str
    history: list[dict[str, Any]]  # the delivery's attempts
    replayed_time: Timestamp | None = None
    replay_outcome: str | None = None  # processed, failed, dead, ...
    # Replayed only by its id, never by "replay all": its replay moves money (errors.MANUAL_REPLAY)
    manual_replay: bool = False


@collection("idempotency_records/{record_id}", read="nobody (server only)", write="the callable kernel", domain="ops")
class IdempotencyRecordDoc(Document):
    """A state-changing call's key, payload hash and answer (TTL on expires_at)."""

    status: str
    uid: str | None
    function: str
    payload_hash: str
    locked_until: Timestamp
    expires_at: Timestamp
    token: str  # which call holds it in progress (only that call completes or releases it)
    created_time: Timestamp
    response: dict[str, Any] | None = None  # the answer a repeat gets, once completed
    completed_time: Timestamp | None = None


@collection("effects/{key}", read="nobody (server only)", write="the kernel (effects.once)", domain="ops")
class EffectDoc(Document):
    """An effect outside Firestore (Stripe, FCM, SMTP) and its lease (TTL on expires_at)."""

    state: str
    attempts: int
    lease_until: Timestamp | None
    holder: str | None = None  # the token of the attempt that took it last (only it writes the outcome)
    expires_at: Timestamp
    kind: str  # what the effect is (stripe_refund, ff_push, ...)
    payment_id: str | None = None
    uid: str | None = None  # whose effect (deleted-user once the account is erased)
    result: dict[str, Any] | None = None  # what succeeded, returned to every later attempt
    error: str | None = None  # the last failure
    created_time: Timestamp
    updated_time: Timestamp


@collection("ops_state/{name}", read="admins", write="ops functions", domain="ops")
class OpsStateDoc(Document):
    """Operational state, e.g. ops_state/sweep: the last sweep and its counts."""

    last_sweep_time: Timestamp | None = None
    last_counts: dict[str, int] | None = None
    lost_scan: dict[str, Any] | None = None  # per event type: checked_to, backlog_lo, backlog_hi (the sweep's cursor)
