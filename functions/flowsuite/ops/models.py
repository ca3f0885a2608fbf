"""Requests and answers of the ops callables."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from flowsuite.core.models import IdempotentRequest, Request, Response, not_reserved

# A delivery id: '{event_id}:{subscriber}' (a document id: never a reserved "__...__").
DeliveryId = Annotated[str, StringConstraints(min_length=3, max_length=200, pattern=r"^[A-Za-z0-9_\-]+:[A-Za-z0-9_]+$"),
                       AfterValidator(not_reserved)]


class SendProbe(IdempotentRequest):
    note: str = Field(default="", max_length=200)


class ProbeAnswer(Response):
    probe_id: str
    event_id: str
    correlation_id: str


class RunSweep(Request):
    pass


class SweepAnswer(Response):
    retried: int
    stalled: int
    lost: int
    processed: int
    errors: int = 0


class ListDeadLetters(Request):
    limit: int = Field(default=50, ge=1, le=500)
    subscriber: str | None = Field(default=None, max_length=100)


class DeadLetter(Response):
    id: str
    subscriber: str
    event_type: str
    event_id: str
    correlation_id: str
    error: str
    attempts: int
    status: str
    created_time: dt.datetime | None = None
    manual_replay: bool = Field(default=False, description="Replayed only by its id, never by `all`: its replay "
                                                             "moves money (a refund staff may have made another way).")


class DeadLetterList(Response):
    dead_letters: list[DeadLetter]


class ReplayDeadLetters(Request):
    ids: list[DeliveryId] = Field(default_factory=list, max_length=500)
    all: bool = Field(default=False, description="Every dead letter but those replayed only by their id "
                                                 "(`manual_replay`: their replay moves money).")


class ReplayOutcome(Response):
    id: str
    outcome: str


class ReplayAnswer(Response):
    replayed: list[ReplayOutcome]


class Diagnose(Request):
    code: Literal[
        "invalid-argument", "unauthenticated", "permission-denied", "not-found",
        "failed-precondition", "already-exists", "resource-exhausted", "internal",
    ]


class DiagnoseAnswer(Response):
    ok: bool


class Ping(Request):
    pass


class Pong(Response):
    ok: bool
    correlation_id: str


class GetMetrics(Request):
    window: Literal["hour", "day"] = "hour"


class EventSeries(Response):
    type: str
    total: int  # events of this type in the window
    per_minute: list[float | None]  # per bucket; null before the source's complete_from


class LatencySeries(Response):
    subscriber: str  # "*" is every subscriber together
    count: int  # processed deliveries in the window
    p50_ms: float | None
    p95_ms: float | None
    p50: list[float | None]  # per bucket; null where nothing was processed
    p95: list[float | None]


class MetricsAnswer(Response):
    window: Literal["hour", "day"]
    start: dt.datetime
    end: dt.datetime
    bucket_seconds: int  # 60 for the hour, 900 for the day
    times: list[int]  # each bucket's start, epoch seconds
    events: list[EventSeries]
    latency: list[LatencySeries]  # publication to processed mark
    failures: list[int | None]  # failed attempts per bucket (retried or dead-lettered)
    dead_letters: list[int | None]  # dead letters created per bucket
    reads: dict[str, int]  # documents read per source
    limits: dict[str, int]  # the most each source reads
    complete_from: dict[str, dt.datetime | None]  # a source cut off by its limit is complete from then
