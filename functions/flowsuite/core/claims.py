"""One claim primitive: a record that says who may do a piece of work, and what came of it.

Three kinds of work in the suite must happen once although what starts them
repeats: a state-changing callable (its idempotency key), an effect outside
Firestore (a Stripe call) and an event's delivery to a subscriber. Each keeps a
record in Firestore with the same four parts, as AWS Powertools' idempotency
records do:

* **state**: absent; *running*, under a lease; *done*, with its result; or
  anything else (failed, released), which is free to run again;
* **lease expiry**: a running record whose lease has expired belongs to nobody
  (its holder crashed or timed out), so the work may run again;
* **payload hash**: a record made for one payload refuses another (an
  idempotency key reused with a different body);
* **result**: what a done record answers every repeat.

The kinds differ only in their field names and state values, which their
documents and tests rely on, so each declares a ``Shape``:

=================  ================  ===========  ======================  =============
record             state field       running      done                    lease field
=================  ================  ===========  ======================  =============
idempotency        ``status``        in_progress  completed (until        ``locked_until``
                                                  ``expires_at``)
effects            ``state``         PROCESSING   SUCCEEDED               ``lease_until``
deliveries (bus)   ``status``        processing   processed, dead         ``lease_until``
orders (in txn)    -                 -            the order exists        -
=================  ================  ===========  ======================  =============

``decide`` is the one decision (pure). ``claim`` makes it in a transaction and,
when the work may run, takes the record (running state, lease, payload hash and
the caller's own fields) in the same transaction. The in-transaction mode is
``decide`` on a record the caller read with its own transaction: ``orders_place``
reads its order (whose id derives from the key) and either answers it or creates
it with the payload hash, in one transaction, with no separate record and no
lease (see ``idempotency.replay_in_transaction``). How a claim ends (a stored
answer, a released key, a failure to retry) stays with each kind.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowsuite.core import clock

if TYPE_CHECKING:  # pragma: no cover
    from flowsuite.core.documents import Document

# What a claim may do.
RUN = "run"  # absent, free, or a lease that expired: take it and do the work
DONE = "done"  # done already: answer its result
BUSY = "busy"  # another attempt holds a live lease
DONE_OTHER_PAYLOAD = "done_other_payload"  # done, for another payload: refuse
BUSY_OTHER_PAYLOAD = "busy_other_payload"  # running, for another payload: refuse


@dataclasses.dataclass(frozen=True)
class Shape:
    """Where a kind of record keeps the four parts of a claim."""

    state: str | None  # the state field; None: the record exists only once done (in-transaction mode)
    running: str | None = None
    done: frozenset[str] = frozenset()
    lease: str | None = None  # the lease expiry field (a timestamp)
    payload_hash: str | None = None
    result: str | None = None
    expires: str | None = None  # a done record past this time counts as absent (its TTL has not run yet)


def payload_hash(payload: dict[str, Any]) -> str:
    """A stable hash of a payload (key order and whitespace do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _live(moment: Any, now: dt.datetime) -> bool:
    return bool(moment) and moment > now


def decide(shape: Shape, record: dict[str, Any] | None, now: dt.datetime, digest: str | None = None) -> str:
    """What an attempt may do given the stored record. Pure.

    ``digest`` is the payload's hash, for shapes that keep one; another payload's
    record answers ``done_other_payload`` or ``busy_other_payload``."""
    if record is None:
        return RUN
    other = shape.payload_hash is not None and digest is not None and record.get(shape.payload_hash) != digest
    state = record.get(shape.state) if shape.state else None
    if shape.state is None or state in shape.done:
        if shape.expires and not _live(record.get(shape.expires), now):
            return RUN  # done long ago: the record has expired
        return DONE_OTHER_PAYLOAD if other else DONE
    if state == shape.running and shape.lease and _live(record.get(shape.lease), now):
        return BUSY_OTHER_PAYLOAD if other else BUSY
    return RUN  # failed, released, or a lease that outlived its holder


def claim(
    db,
    ref,
    shape: Shape,
    *,
    document: type[Document],
    lease_seconds: float,
    fields: Callable[[dict[str, Any] | None, dt.datetime], dict[str, Any]] = lambda record, now: {},
    digest: str | None = None,
    merge: bool = False,
    now: dt.datetime | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Decides in a transaction and, when the work may run, takes the record in it.

    Taking writes the running state, a lease of ``lease_seconds`` and the payload
    hash, with ``fields(record, now)`` (the kind's own fields; ``record`` is None for
    a new one), merged into the record or replacing it, through ``document`` (the
    record's model, which declares every field written). ``now`` is the clock the
    lease is judged and set by (default: the time of each transaction attempt).
    Returns the decision and the record as it was read."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    if shape.state is None or shape.running is None or shape.lease is None:
        raise ValueError("claim needs a shape with a running state and a lease")

    @gcf.transactional
    def take(txn) -> tuple[str, dict[str, Any] | None]:
        snap = ref.get(transaction=txn)
        record = snap.to_dict() if snap.exists else None
        at = now or clock.utcnow()
        decision = decide(shape, record, at, digest)
        if decision == RUN:
            taken = {**fields(record, at), shape.state: shape.running,
                     shape.lease: at + dt.timedelta(seconds=lease_seconds)}
            if shape.payload_hash is not None and digest is not None:
                taken[shape.payload_hash] = digest
            # Merged: some of the record's fields; replacing it: the whole record, validated.
            data = document.fields(taken) if merge else document.new(taken)
            txn.set(ref, data, merge=merge)
        return decision, record

    return take(db.transaction())
