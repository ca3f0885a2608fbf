"""Effects outside Firestore (Stripe, FCM, SMTP) that a retry must not repeat.

Modelled on the firestore-send-email extension's delivery state: a record per
effect, ``effects/{key}``, moves PENDING -> PROCESSING (with a lease) ->
SUCCEEDED or FAILED, a ``claims.Shape`` (see ``flowsuite.core.claims``).
``once(key, perform)`` runs ``perform`` only when no other attempt succeeded or
holds a live lease, stores its result, and returns the stored result to every
later attempt. The lease outlasts the longest function timeout
(``settings.LEASE_SECONDS``); the outcome (SUCCEEDED or FAILED) is written only
while this attempt's holder token still holds the record, so an attempt that
outlived its lease never overwrites the outcome of the one that took over. A
crash inside ``perform`` leaves a lease that expires, after which the effect may
run again: give the provider an idempotency key where it takes one (Stripe
does) to make that safe too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flowsuite.core import claims, clients, clock, log, settings
from flowsuite.core.errors import RetryLaterError
from flowsuite.core.kernel_documents import EffectDoc

COLLECTION = "effects"
RETENTION_DAYS = 30  # TTL policy on expires_at
PENDING, PROCESSING, SUCCEEDED, FAILED = "PENDING", "PROCESSING", "SUCCEEDED", "FAILED"
SHAPE = claims.Shape(state="state", running=PROCESSING, done=frozenset({SUCCEEDED}), lease="lease_until",
                     result="result", holder="holder")


def done_result(txn, db, key: str) -> dict[str, Any] | None:
    """The stored result of an effect that succeeded, read in the caller's transaction; None
    when it has not run, failed, or is running (its attempt will act on what it made)."""
    snap = db.collection(COLLECTION).document(key).get(transaction=txn)
    record = snap.to_dict() if snap.exists else None
    return record.get("result") if record and record.get("state") == SUCCEEDED else None


def decide(record: dict[str, Any] | None, now: dt.datetime) -> str:
    """'run', 'done' or 'busy' for an effect record. Pure."""
    return claims.decide(SHAPE, record, now)


def once(
    key: str,
    perform: Callable[[], dict[str, Any] | None],
    *,
    lease_seconds: float = settings.LEASE_SECONDS,
    meta: dict[str, Any] | None = None,
    db=None,
) -> dict[str, Any]:
    db = db or clients.firestore()
    ref = db.collection(COLLECTION).document(key.replace("/", "_"))

    def fields(record: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
        return {
            **(meta or {}),
            "attempts": int((record or {}).get("attempts", 0)) + 1,
            "updated_time": now,
            "expires_at": now + dt.timedelta(days=RETENTION_DAYS),
            **({} if record else {"created_time": now}),
        }

    claim = claims.claim(db, ref, SHAPE, document=EffectDoc, lease_seconds=lease_seconds, fields=fields, merge=True)
    if claim.decision == claims.DONE:
        return (claim.record or {}).get("result") or {}
    if claim.decision == claims.BUSY:
        raise RetryLaterError(f"effect {key} is being performed by another attempt")
    try:
        result = perform() or {}
    except Exception as exc:
        _finish(db, ref, key, claim.holder, EffectDoc.fields(
            state=FAILED, error=f"{type(exc).__name__}: {exc}"[:1000], lease_until=None, updated_time=clock.utcnow()))
        raise
    _finish(db, ref, key, claim.holder, EffectDoc.fields(
        state=SUCCEEDED, result=result, error=None, lease_until=None, updated_time=clock.utcnow()))
    return result


def _finish(db, ref, key: str, holder: str | None, fields: dict[str, Any]) -> None:
    written, current = claims.finish(db, ref, SHAPE, holder, fields, document=EffectDoc)
    if not written:
        log.warning("effect finished after its lease was taken over; the record keeps the other attempt's outcome",
                    effect=key, outcome=fields["state"], record_state=(current or {}).get("state"))
