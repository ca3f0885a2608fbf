"""The event bus: subscribers, recorded deliveries, retries, dead letters.

Python Firestore triggers cannot ask the platform to retry (the SDK fixes
``retry=False``) and delivery is at least once and unordered, so the bus owns
reliability:

* every (event, subscriber) pair has a delivery record, ``deliveries/{event}:{subscriber}``;
* a delivery is claimed with a lease; a transactional handler's writes and the
  ``processed`` mark commit in one transaction, so a redelivery has no effect;
  a leased handler's claim records a holder token, its processed mark is written
  only while that holder still holds the record, and it starts no effect past
  its lease's deadline (``claims.effect_deadline``): a slow attempt that was taken
  over writes nothing (outcome ``lease_lost``);
* a failure is recorded (error, attempt, history) and retried with exponential
  backoff through a Cloud Task (``opsRedeliver``); the sweep
  (``sweep``: scheduled, and callable by an admin) retries what is due, takes
  over stalled deliveries whose lease expired, and delivers lost events that
  never got a delivery record;
* after ``BUS_MAX_ATTEMPTS`` the delivery is a dead letter holding the event,
  the error and the history, until an admin replays it. A "retry later"
  (``RetryLaterError``) does not use up attempts, but no failure is retried
  for longer than ``BUS_MAX_RETRY_HOURS``: then it is a dead letter too.

Split by responsibility; every name stays importable from ``flowsuite.core.bus``:

* ``records``: the delivery record's names and states, the claim and retry decisions (pure);
* ``subscribe``: ``subscriber`` (the decorator) and the registry of subscribers;
* ``deliver``: ``deliver`` (one event to one subscriber), failure recording, retry scheduling;
* ``recover``: ``redeliver``, ``sweep`` and ``replay_dead_letter``.
"""

from flowsuite.core.bus.deliver import deliver, schedule_retry
from flowsuite.core.bus.records import (
    DEAD,
    DEAD_LETTERS,
    DELIVERIES,
    FAILED,
    LEASE_LOST,
    OPS_STATE,
    PENDING,
    PROCESSED,
    PROCESSING,
    REDELIVER_FUNCTION,
    FailurePlan,
    backoff_seconds,
    claim_decision,
    delivery_id,
    error_text,
    failure_plan,
    max_failing_age,
)
from flowsuite.core.bus.recover import NotDueError, redeliver, replay_dead_letter, sweep
from flowsuite.core.bus.subscribe import SUBSCRIBERS, Subscriber, all_subscribers, subscriber, subscribers_of

__all__ = [
    "DEAD", "DEAD_LETTERS", "DELIVERIES", "FAILED", "LEASE_LOST", "OPS_STATE", "PENDING", "PROCESSED", "PROCESSING",
    "REDELIVER_FUNCTION", "SUBSCRIBERS", "all_subscribers", "FailurePlan", "NotDueError", "Subscriber", "backoff_seconds",
    "claim_decision", "deliver", "delivery_id", "error_text", "failure_plan", "max_failing_age", "redeliver",
    "replay_dead_letter", "schedule_retry", "subscriber", "subscribers_of", "sweep",
]
