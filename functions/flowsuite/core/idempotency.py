"""Idempotency keys for state-changing callables, over the one claim primitive.

The contract follows AWS Powertools' idempotency utility (the record is a
``claims.Shape``, see ``flowsuite.core.claims``):

* a record per (uid, function, key) holds a hash of the payload and, once the
  call completed, its response;
* states: ``in_progress`` (with a lock that expires a margin after the call
  would have timed out: its callable's timeout plus ``settings.LEASE_MARGIN_SECONDS``),
  ``completed``, and expired (a completed record past its TTL, treated as absent);
* the record names the call holding it (``token``): only that call completes or
  releases it, so a call that outlived its lock never overwrites the answer of
  the call that took the key over;
* a repeat returns the stored response; a reused key with another payload is
  refused; a call that raises deletes its record so a retry runs again;
* the claim is a Firestore transaction, so concurrent repeats of one key run
  the handler once: the others wait for its response.

``run`` stores the answer after ``compute`` returned, in a second transaction: if the
instance dies (or that write fails) in between, the key stays ``in_progress`` until its
lock expires and a retry runs ``compute`` again. So ``run`` is for handlers whose effect
is idempotent by itself (``payments_create_intent``: Stripe calls under ``effects.once``,
a payment created once). A handler whose whole effect is Firestore writes that fit one
transaction uses ``run_in_transaction`` instead: the key's record is read, and the effect
and the completed record written, in that one transaction (``orders_upsert_product``,
whose ``stock_delta`` must never be added twice).

The in-transaction mode (``replay_in_transaction``) serves a handler that keeps
the contract on its own document, created in the transaction of its effect
(``orders_place``: the order, whose id derives from the key; it reads the order
before its transaction and creates it only if still missing, so a repeat that
loses the race fails with ALREADY_EXISTS, reads it again and answers it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from flowsuite.core import claims, clients, clock, log, settings
from flowsuite.core.errors import FailedPreconditionError, InvalidArgumentError
from flowsuite.core.kernel_documents import IdempotencyRecordDoc

COLLECTION = "idempotency_records"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
WAIT_FOR_PEER_SECONDS = 10.0
SHAPE = claims.Shape(state="status", running=IN_PROGRESS, done=frozenset({COMPLETED}), lease="locked_until",
                     payload_hash="payload_hash", result="response", expires="expires_at", holder="token")

payload_hash = claims.payload_hash  # a stable hash of a request payload (key order and whitespace do not matter)


def record_id(uid: str | None, function: str, key: str) -> str:
    return hashlib.sha256(f"{uid or '-'}\n{function}\n{key}".encode()).hexdigest()[:40]


def _refuse_reuse(action: str) -> None:
    """A key used with another payload: the one refusal both modes give."""
    if action == claims.DONE_OTHER_PAYLOAD:
        raise InvalidArgumentError.for_field(
            "idempotency_key", "was already used with a different payload", "idempotency_key_reused")
    if action == claims.BUSY_OTHER_PAYLOAD:
        raise InvalidArgumentError.for_field(
            "idempotency_key", "is in use by another call with a different payload", "idempotency_key_reused")


def decide(record: dict[str, Any] | None, digest: str, now: dt.datetime) -> str:
    """What a call should do given the stored record: run, replay or wait. Pure."""
    action = claims.decide(SHAPE, record, now, digest)
    _refuse_reuse(action)
    return {claims.DONE: "replay", claims.BUSY: "wait"}.get(action, "run")


# The in-transaction mode: the handler's own document is the record. It exists only
# once the call has done its work (created in the same transaction as everything
# else), so it is never in progress and needs no lease.
IN_TRANSACTION = claims.Shape(state=None, payload_hash="request_hash")


def replay_in_transaction(document: dict[str, Any] | None, digest: str) -> dict[str, Any] | None:
    """For a handler that keeps the contract on its own document: ``document`` is what it read
    at the id its key derives to. Returns the document to answer a repeat with, or None when
    the call should run and create it (``txn.create``, so a concurrent repeat's commit fails)
    with ``request_hash`` = ``digest`` in the transaction of its effect; refuses a key reused
    with another payload. Pure."""
    action = claims.decide(IN_TRANSACTION, document, clock.utcnow(), digest)
    _refuse_reuse(action)
    return document if action == claims.DONE else None


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
    deadline = time.monotonic() + WAIT_FOR_PEER_SECONDS

    def fields(record: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
        return {
            "uid": uid,
            "function": function,
            "created_time": gcf.SERVER_TIMESTAMP,
            # TTL policy field: the record disappears after it expired.
            "expires_at": now + dt.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS),
        }

    while True:
        claim = claims.claim(db, ref, SHAPE, document=IdempotencyRecordDoc, lease_seconds=lock_seconds(timeout_seconds),
                             fields=fields, digest=digest)
        _refuse_reuse(claim.decision)
        if claim.decision == claims.DONE:
            return claim.record["response"]
        if claim.decision == claims.RUN:
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
        _release(db, ref, claim.holder)
        raise
    now = clock.utcnow()
    written, current = claims.finish(db, ref, SHAPE, claim.holder, IdempotencyRecordDoc.fields(
        status=COMPLETED,
        response=response,
        completed_time=gcf.SERVER_TIMESTAMP,
        expires_at=now + dt.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS),
    ), document=IdempotencyRecordDoc)
    if not written:
        log.warning("call finished after its idempotency lock was taken over; its answer was not stored",
                    record_status=(current or {}).get("status"))
    return response


def run_in_transaction(
    db,
    *,
    uid: str | None,
    function: str,
    key: str,
    payload: dict[str, Any],
    compute: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """``run`` for a handler whose effect is Firestore writes in one transaction: ``compute(txn)``
    reads with ``txn`` (the key's record is read first), writes with it and returns the answer;
    the completed record, with that answer, is written in the same transaction. Nothing is ever
    left in progress: a call that dies before the commit wrote nothing (a retry runs again), one
    that committed is answered from the record (a retry replays it). Concurrent repeats are
    serialised by the transaction: the later one re-reads the completed record and replays it.
    The record is ``run``'s (same id, same fields), so switching a callable between the modes
    keeps its keys; an ``in_progress`` one that ``run`` left (a call in flight across a deploy)
    answers "retry shortly" while its lock holds."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    ref = db.collection(COLLECTION).document(record_id(uid, function, key))
    digest = payload_hash(payload)

    @gcf.transactional
    def once(txn) -> dict[str, Any]:
        snap = ref.get(transaction=txn)
        now = clock.utcnow()
        action = claims.decide(SHAPE, snap.to_dict() if snap.exists else None, now, digest)
        _refuse_reuse(action)
        if action == claims.DONE:
            return snap.to_dict()["response"]
        if action == claims.BUSY:
            raise FailedPreconditionError("A call with this idempotency key is still in progress; retry shortly.",
                                          details={"reason": "idempotency_in_progress"})
        response = compute(txn)
        txn.set(ref, IdempotencyRecordDoc.new(
            status=COMPLETED, uid=uid, function=function, payload_hash=digest, response=response,
            locked_until=now,  # never locked: it is written completed
            token=uuid.uuid4().hex, created_time=gcf.SERVER_TIMESTAMP, completed_time=gcf.SERVER_TIMESTAMP,
            expires_at=now + dt.timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS),
        ))
        return response

    return once(db.transaction())


def lock_seconds(timeout_seconds: float) -> float:
    """How long an in-progress key stays locked: the callable's timeout and a margin, so a call
    still running inside its timeout always holds its key. Pure."""
    return timeout_seconds + settings.LEASE_MARGIN_SECONDS


def _release(db, ref, token: str) -> None:
    """Deletes our in-progress record (only ours), so a retry runs again."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    @gcf.transactional
    def release(txn) -> None:
        snap = ref.get(transaction=txn)
        if claims.holds(SHAPE, snap.to_dict() if snap.exists else None, token):
            txn.delete(ref)

    release(db.transaction())
