"""Idempotency keys for state-changing callables, as a small persistence layer.

The contract follows AWS Powertools' idempotency utility:

* a record per (uid, function, key) holds a hash of the payload and, once the
  call completed, its response;
* states: ``in_progress`` (with a lock that expires when the call would have
  timed out), ``completed``, and expired (a completed record past its TTL,
  treated as absent);
* a repeat returns the stored response; a reused key with another payload is
  refused; a call that raises deletes its record so a retry runs again;
* the claim is a Firestore transaction, so concurrent repeats of one key run
  the handler once: the others wait for its response.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from flowsuite.core import clients, clock, settings
from flowsuite.core.errors import FailedPreconditionError, InvalidArgumentError

COLLECTION = "idempotency_records"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
WAIT_FOR_PEER_SECONDS = 10.0


def payload_hash(payload: dict[str, Any]) -> str:
    """A stable hash of a request payload (key order and whitespace do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_id(uid: str | None, function: str, key: str) -> str:
    return hashlib.sha256(f"{uid or '-'}\n{function}\n{key}".encode()).hexdigest()[:40]


def decide(record: dict[str, Any] | None, digest: str, now: dt.datetime) -> str:
    """What a call should do given the stored record: run, replay or wait. Pure."""
    if record is None:
        return "run"
    status = record.get("status")
    if status == COMPLETED and record.get("expires_at") and record["expires_at"] > now:
        if record.get("payload_hash") != digest:
            raise InvalidArgumentError.for_field(
                "idempotency_key", "was already used with a different payload", "idempotency_key_reused"
            )
        return "replay"
    if status == IN_PROGRESS and record.get("locked_until") and record["locked_until"] > now:
        if record.get("payload_hash") != digest:
            raise InvalidArgumentError.for_field(
                "idempotency_key", "is in use by another call with a different payload", "idempotency_key_reused"
            )
        return "wait"
    return "run"  # absent, expired, or an in-progress lock that outlived its call


def run(
    *,
    uid: str | None,
    function: str,
    key: str,
    payload: dict[str, Any],
    compute: Callable[[], dict[str, Any]],
    timeout_seconds: int = settings.CALLABLE_TIMEOUT_SECONDS,
    db=None,
) -> dict[str, Any]:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    db = db or clients.firestore()
    ref = db.collection(COLLECTION).document(record_id(uid, function, key))
    digest = payload_hash(payload)
    token = f"{time.time_ns()}"
    deadline = time.monotonic() + WAIT_FOR_PEER_SECONDS

    @gcf.transactional
    def claim(txn) -> tuple[str, dict[str, Any] | None]:
        snap = ref.get(transaction=txn)
        record = snap.to_dict() if snap.exists else None
        now = clock.utcnow()
        action = decide(record, digest, now)
        if action == "replay":
            return action, record["response"]
        if action == "wait":
            return action, None
        txn.set(
            ref,
            {
                "status": IN_PROGRESS,
                "uid": uid,
                "function": function,
                "payload_hash": digest,
                "token": token,
                "locked_until": now + dt.timedelta(seconds=timeout_seconds),
                "created_time": gcf.SERVER_TIMESTAMP,
                # TTL policy field: the record disappears after it expired.
                "expires_at": now + dt.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS),
            },
        )
        return "run", None

    while True:
        action, response = claim(db.transaction())
        if action == "replay":
            return response
        if action == "run":
            break
        if time.monotonic() > deadline:
            raise FailedPreconditionError(
                "A call with this idempotency key is still in progress; retry shortly.",
                details={"reason": "idempotency_in_progress"},
            )
        time.sleep(0.1)

    try:
        response = compute()
    except BaseException:
        _release(db, ref, token)
        raise
    now = clock.utcnow()
    ref.update(
        {
            "status": COMPLETED,
            "response": response,
            "completed_time": gcf.SERVER_TIMESTAMP,
            "expires_at": now + dt.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS),
        }
    )
    return response


def _release(db, ref, token: str) -> None:
    """Deletes our in-progress record (only ours), so a retry runs again."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    @gcf.transactional
    def release(txn) -> None:
        snap = ref.get(transaction=txn)
        if snap.exists and snap.get("token") == token:
            txn.delete(ref)

    release(db.transaction())
