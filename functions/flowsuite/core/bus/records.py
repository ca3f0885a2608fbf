"""The delivery record and the retry policy: names, states and pure decisions.

A delivery record, ``deliveries/{event}:{subscriber}``, is the bus's state for one
(event, subscriber) pair: ``status`` (processing with a lease, processed, failed
with a due time, dead), ``attempts``, ``history``, ``failing_since`` and the steps a
leased delivery finished. Everything here is pure, for unit tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from flowsuite.core import claims, settings
from flowsuite.core.errors import RetryLaterError

DELIVERIES = "deliveries"
DEAD_LETTERS = "dead_letters"
OPS_STATE = "ops_state"
# Cloud Tasks queue ids allow letters, digits and hyphens only: no snake_case here.
REDELIVER_FUNCTION = "opsRedeliver"

PENDING, PROCESSING, PROCESSED, FAILED, DEAD = "pending", "processing", "processed", "failed", "dead"


def backoff_seconds(attempt: int, base: float, cap: float = 3600.0, rand: Callable[[], float] = random.random) -> float:
    """Delay before attempt ``attempt + 1``: base * 2^(attempt-1), +-10% jitter, capped."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return round(delay * (0.9 + 0.2 * rand()), 3)


def delivery_id(event_id: str, subscriber_name: str) -> str:
    return f"{event_id}:{subscriber_name}"


# The delivery record as a claim (see ``flowsuite.core.claims``): processing under a
# lease, held by one attempt's token; processed or dead is done (a dead letter waits for
# an admin's replay).
SHAPE = claims.Shape(state="status", running=PROCESSING, done=frozenset({PROCESSED, DEAD}), lease="lease_until",
                     holder="holder")
LEASE_LOST = "lease_lost"  # an attempt outlived its lease: it stopped, or its outcome was not written


def claim_decision(record: dict[str, Any] | None, now: dt.datetime) -> str:
    """Whether a delivery attempt may start: 'run', 'duplicate' or 'busy'. Pure."""
    decision = claims.decide(SHAPE, record, now)
    return "duplicate" if decision == claims.DONE else decision


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
