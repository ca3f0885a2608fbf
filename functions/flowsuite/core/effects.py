"""Effects outside Firestore (Stripe, FCM, SMTP) that a retry must not repeat.

Modelled on the firestore-send-email extension's delivery state: a record per
effect, ``effects/{key}``, moves PENDING -> PROCESSING (with a lease) ->
SUCCEEDED or FAILED. ``once(key, perform)`` runs ``perform`` only when no other
attempt succeeded or holds a live lease, stores its result, and returns the
stored result to every later attempt. A crash inside ``perform`` leaves a lease
that expires, after which the effect may run again: give the provider an
idempotency key where it takes one (Stripe does) to make that safe too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flowsuite.core import clients, clock
from flowsuite.core.errors import RetryLaterError

COLLECTION = "effects"
RETENTION_DAYS = 30  # TTL policy on expires_at
PENDING, PROCESSING, SUCCEEDED, FAILED = "PENDING", "PROCESSING", "SUCCEEDED", "FAILED"


def decide(record: dict[str, Any] | None, now: dt.datetime) -> str:
    """'run', 'done' or 'busy' for an effect record. Pure."""
    if record is None:
        return "run"
    if record.get("state") == SUCCEEDED:
        return "done"
    if record.get("state") == PROCESSING and record.get("lease_until") and record["lease_until"] > now:
        return "busy"
    return "run"


def once(
    key: str,
    perform: Callable[[], dict[str, Any] | None],
    *,
    lease_seconds: int = 60,
    meta: dict[str, Any] | None = None,
    db=None,
) -> dict[str, Any]:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    db = db or clients.firestore()
    ref = db.collection(COLLECTION).document(key.replace("/", "_"))

    @gcf.transactional
    def claim(txn) -> tuple[str, dict[str, Any] | None]:
        snap = ref.get(transaction=txn)
        record = snap.to_dict() if snap.exists else None
        now = clock.utcnow()
        decision = decide(record, now)
        if decision == "run":
            txn.set(
                ref,
                {
                    **(meta or {}),
                    "state": PROCESSING,
                    "lease_until": now + dt.timedelta(seconds=lease_seconds),
                    "attempts": int((record or {}).get("attempts", 0)) + 1,
                    "updated_time": now,
                    "expires_at": now + dt.timedelta(days=RETENTION_DAYS),
                    **({} if record else {"created_time": now}),
                },
                merge=True,
            )
        return decision, (record or {}).get("result")

    decision, result = claim(db.transaction())
    if decision == "done":
        return result or {}
    if decision == "busy":
        raise RetryLaterError(f"effect {key} is being performed by another attempt")
    try:
        result = perform() or {}
    except Exception as exc:
        ref.update({"state": FAILED, "error": f"{type(exc).__name__}: {exc}"[:1000], "lease_until": None,
                    "updated_time": clock.utcnow()})
        raise
    ref.update({"state": SUCCEEDED, "result": result, "error": None, "lease_until": None,
                "updated_time": clock.utcnow()})
    return result
