"""Events: typed contracts, an envelope, and publishing inside a transaction.

An event type is a pydantic model declared by the domain that publishes it:

    @event_type("order.placed", source="orders")
    class OrderPlaced(EventData):
        order_id: str
        ...

``publish(txn, OrderPlaced(...), subject=...)`` writes the envelope with the
caller's transaction or batch (transactional outbox): the state change and its
event commit together or not at all. Each type has its own collection,
``topics/{type}/events/{id}``, so a subscriber's trigger fires for its type only.

Versions. Domains deploy separately, so a consumer meets events one version
older or newer than its code. Each type declares its version history
(``versions={1: "first version", 2: "what changed"}``; the envelope carries the
publisher's ``schema_version``):

* a compatible change (a new optional field) needs no new version: older
  consumers ignore unknown fields, newer ones take the default;
* an incompatible change (a removed field, a changed type, a new required field)
  needs a new version and an upcaster from the previous one:

      @upcaster("order.placed", from_version=1)
      def _placed_v1(data: dict) -> dict:
          return {**data, "channel": "app"}

  a consumer brings older data up to its own version, one step at a time
  (``upcast``); data newer than the consumer that it cannot parse waits (a
  "retry later") for the consumer's own deploy. ``devtools.contracts`` refuses an
  incompatible schema without a new version, against ``docs/events/*.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from flowsuite.core import clock, log, tracing
from flowsuite.core.errors import RetryLaterError
from flowsuite.core.kernel_documents import EventDoc

TOPICS = "topics"
EVENTS = "events"


class EventData(BaseModel):
    """Base of every event's data. Unknown fields are ignored (forward compatible)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)
    event_type: ClassVar["EventType"]


@dataclasses.dataclass(frozen=True)
class EventType:
    name: str
    model: type[EventData]
    source: str
    description: str
    # (version, what changed), oldest first; the last is the version this code publishes and reads.
    history: tuple[tuple[int, str], ...] = ((1, "first version"),)

    @property
    def version(self) -> int:
        return self.history[-1][0]

    @property
    def collection(self) -> str:
        return f"{TOPICS}/{self.name}/{EVENTS}"

    @property
    def trigger_path(self) -> str:
        return f"{self.collection}/{{event_id}}"


EVENT_TYPES: dict[str, EventType] = {}

T = TypeVar("T", bound=EventData)


def event_type(name: str, *, source: str, versions: dict[int, str] | None = None):
    """Declares an event type: its name, publishing domain and version history
    (``{version: what changed}``, 1, 2, ... without gaps; default ``{1: "first version"}``)."""
    if "/" in name or name.count(".") != 1 or not source.startswith(name.split(".")[0]):
        raise ValueError(f"event type {name!r} must be '<entity>.<what_happened>', the entity naming {source!r}")
    history = tuple(sorted((versions or {1: "first version"}).items()))
    if [v for v, _ in history] != list(range(1, len(history) + 1)):
        raise ValueError(f"event type {name!r}: versions must be 1, 2, ... without gaps, not {[v for v, _ in history]}")

    def register(model: type[T]) -> type[T]:
        spec = EventType(name, model, source, (model.__doc__ or name).strip().splitlines()[0], history)
        existing = EVENT_TYPES.get(name)
        if existing is not None and existing.model.__qualname__ != model.__qualname__:
            raise ValueError(f"event type {name!r} declared twice")
        EVENT_TYPES[name] = spec
        model.event_type = spec
        return model

    return register


# (type, version) -> how data of that version becomes data of the next one.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def upcaster(name: str, *, from_version: int):
    """Declares how ``name``'s data of ``from_version`` becomes data of ``from_version + 1``.
    Pure: it gets a copy of the data and returns the new data."""

    def register(step: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        existing = UPCASTERS.get((name, from_version))
        if existing is not None and existing.__qualname__ != step.__qualname__:
            raise ValueError(f"{name} v{from_version} has an upcaster already")
        UPCASTERS[(name, from_version)] = step
        return step

    return register


def upcast(spec: EventType, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Data of ``version`` brought up to the version this code reads, one step at a time.
    Data of this version or a newer one is returned as it is (unknown fields are ignored)."""
    while version < spec.version:
        step = UPCASTERS.get((spec.name, version))
        if step is None:
            raise LookupError(f"{spec.name}: no upcaster from version {version}")
        data = step(dict(data))
        version += 1
    return data


def missing_upcasters(types: dict[str, EventType] | None = None) -> list[str]:
    """Every (type, version) step without an upcaster: a test keeps this empty."""
    return [f"{spec.name} v{v}" for spec in (types or EVENT_TYPES).values() for v in range(1, spec.version)
            if (spec.name, v) not in UPCASTERS]


def data_of(spec: EventType, envelope: Envelope) -> EventData:
    """An envelope's data as this code's model of ``spec``: older versions upcast; a newer
    version this code cannot read yet is a "retry later" (its deploy is on the way)."""
    try:
        return spec.model.model_validate(upcast(spec, envelope.schema_version, envelope.data))
    except ValidationError as exc:
        if envelope.schema_version > spec.version:
            raise RetryLaterError(
                f"{spec.name} v{envelope.schema_version} is newer than this consumer (v{spec.version}) "
                f"and does not parse: {exc.error_count()} errors") from exc
        raise


class TraceRef(BaseModel):
    """Where the publisher was in its trace: the trace, the span that published (the
    parent of each delivery's span) and the caller's sampled flag."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    trace_id: str
    span_id: str | None = None
    sampled: bool = False
    # The publishing span's name (``orders_place``, a subscriber, ``payments.apply_stripe_event``):
    # the console's trace waterfall names the hop by it. None when the trace was passed in.
    name: str | None = None


class Envelope(BaseModel):
    """What every event document holds."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str
    type: str
    source: str
    subject: str
    time: dt.datetime
    correlation_id: str
    schema_version: int
    data: dict[str, Any]
    expires_at: dt.datetime | None = None  # the TTL policy deletes the event after this
    # Optional: events written before traces travelled have none (their deliveries start one).
    trace: TraceRef | None = None

    @property
    def trace_context(self) -> tracing.TraceContext | None:
        return tracing.from_stored(self.trace.model_dump()) if self.trace else None


class StepLog(Protocol):
    """Where a delivery keeps the results of its steps (the bus's delivery record)."""

    def before(self, step: str) -> None:
        """Called before a step's effect; raises ``claims.LeaseLostError`` once the delivery's
        lease is past its deadline (the step is not started)."""

    def keep(self, step: str, result: dict[str, Any]) -> None:
        """Keeps a finished step's result on the delivery record."""


@dataclasses.dataclass(frozen=True)
class Event(Generic[T]):
    """An event as a subscriber receives it: the envelope and its typed data."""

    envelope: Envelope
    data: T
    attempt: int = 1
    # Steps a non-transactional delivery finished in earlier attempts, and where the
    # bus keeps a new one (see ``once``).
    steps: dict[str, Any] = dataclasses.field(default_factory=dict)
    step_log: StepLog | None = None

    def once(self, step: str, perform: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """Runs an effect outside Firestore (a push, an email) at most once per
        delivery: its result is kept on the delivery record as soon as it is done,
        and a retry (or an attempt that takes the delivery over) returns it instead
        of running ``perform`` again. The delivery's lease keeps two attempts from
        running at once, and an attempt past its lease's deadline starts no effect
        (``claims.LeaseLostError``). A step costs no read and one write
        (``effects.once`` is the same guard outside the bus)."""
        if not step.isidentifier():  # it names a field of the delivery record
            raise ValueError(f"step {step!r} must be a plain name (letters, digits, _)")
        if step in self.steps:
            return self.steps[step]
        if self.step_log is not None:
            self.step_log.before(step)
        result = perform() or {}
        if self.step_log is not None:
            self.step_log.keep(step, result)
        self.steps[step] = result
        return result

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def subject(self) -> str:
        return self.envelope.subject

    @property
    def correlation_id(self) -> str:
        return self.envelope.correlation_id


def envelope_for(
    data: EventData,
    *,
    subject: str,
    correlation_id: str | None = None,
    event_id: str | None = None,
    now: dt.datetime | None = None,
    trace: tracing.TraceContext | None = None,
) -> Envelope:
    """Builds the envelope of an event. Pure but for the defaults: the correlation id
    and the trace (the running span) of the current call or delivery."""
    from flowsuite.core import settings  # noqa: PLC0415

    spec = type(data).event_type
    name = None
    if trace is None:
        trace, name = tracing.current(), tracing.current_name()
    time = now or clock.utcnow()
    return Envelope(
        id=event_id or uuid.uuid4().hex,
        type=spec.name,
        source=spec.source,
        subject=subject,
        time=time,
        expires_at=time + dt.timedelta(days=settings.EVENT_TTL_DAYS),
        correlation_id=correlation_id or log.correlation_id() or uuid.uuid4().hex,
        schema_version=spec.version,
        data=data.model_dump(mode="json"),
        trace=TraceRef(**trace.stored(), name=name) if trace else None,
    )


def publish(
    writer,
    data: EventData,
    *,
    subject: str,
    correlation_id: str | None = None,
    event_id: str | None = None,
    db=None,
    trace: tracing.TraceContext | None = None,
) -> Envelope:
    """Adds the event to ``writer`` (a Transaction or WriteBatch): it commits with it.

    The correlation id defaults to the one bound for the current call or delivery,
    so a chain of events keeps the id of the request that started it; the trace
    defaults to the running span, which becomes the parent of each delivery's span.
    """
    from flowsuite.core import clients  # noqa: PLC0415

    envelope = envelope_for(data, subject=subject, correlation_id=correlation_id, event_id=event_id, trace=trace)
    db = db or clients.firestore()
    ref = db.collection(type(data).event_type.collection).document(envelope.id)
    writer.create(ref, EventDoc.new(envelope.model_dump()))
    return envelope


def parse(doc: dict[str, Any]) -> tuple[Envelope, EventData]:
    envelope = Envelope.model_validate(doc)
    return envelope, data_of(EVENT_TYPES[envelope.type], envelope)
