"""Requests and answers of the ops callables."""

from __future__ import annotations

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


class DeadLetterList(Response):
    dead_letters: list[DeadLetter]


class ReplayDeadLetters(Request):
    ids: list[DeliveryId] = Field(default_factory=list, max_length=500)
    all: bool = False


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
