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
* **result**: what a done record answers every repeat;
* **holder**: a token naming the attempt that took the record. The attempt's
  final write (done, processed, failed) goes through ``finish``, a transaction
  that writes only while the record is still running under that holder: an
  attempt that outlived its lease and was taken over never overwrites the
  outcome of the attempt that took it over.

Leases start at the real clock (``clock.utcnow``) and last ``settings.LEASE_SECONDS``
by default: the longest function timeout plus a margin (``core/settings.py``), so
an attempt still inside its function's timeout always holds its lease. A caller
may judge an existing lease by another clock (``now``: a sweep's), never start
one by it.

The kinds differ only in their field names and state values, which their
documents and tests rely on, so each declares a ``Shape``:

=================  ================  ===========  ======================  ================  ==========
record             state field       running      done                    lease field       holder
=================  ================  ===========  ======================  ================  ==========
idempotency        ``status``        in_progress  completed (until        ``locked_until``  ``token``
                                                  ``expires_at``)
effects            ``state``         PROCESSING   SUCCEEDED               ``lease_until``   ``holder``
deliveries (bus)   ``status``        processing   processed, dead         ``lease_until``   ``holder``
orders (in txn)    -                 -            the order exists        -                 -
=================  ================  ===========  ======================  ================  ==========

``decide`` is the one decision (pure). ``claim`` makes it in a transaction and,
when the work may run, takes the record (running state, holder token, lease,
payload hash and the caller's own fields) in the same transaction; ``finish``
is the holder's final write. Both write through the record's document model
(``document``: ``DeliveryDoc``, ``EffectDoc``, ``IdempotencyRecordDoc``), which
refuses a field it does not declare. The in-transaction mode is
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
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from flowsuite.core import clock, settings

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
    holder: str | None = None  # the token of the attempt that took the record (``finish`` checks it)


class LeaseLostError(RuntimeError):
    """An attempt outlived its lease: another attempt may hold the record now, so this one
    stops before its next effect and writes no outcome."""


class Claim(NamedTuple):
    """What ``claim`` decided, the record as it was read and, when the work may run, the
    holder token this attempt took it with and the lease's end (real clock)."""

    decision: str
    record: dict[str, Any] | None
    holder: str | None = None
    lease_until: dt.datetime | None = None


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


def holds(shape: Shape, record: dict[str, Any] | None, holder: str | None) -> bool:
    """Whether ``record`` is still running under ``holder``: the only state in which that
    attempt may write its outcome. Pure; the lease's expiry does not matter here (a late
    finisher nobody took over still owns its record)."""
    return (record is not None and holder is not None and shape.holder is not None
            and record.get(shape.holder) == holder and record.get(shape.state) == shape.running)


def lease_end(started: dt.datetime, lease_seconds: float) -> dt.datetime:
    """When a lease taken at ``started`` (the real clock) ends. Pure."""
    return started + dt.timedelta(seconds=lease_seconds)


def effect_deadline(lease_until: dt.datetime, margin_seconds: float | None = None) -> dt.datetime:
    """The last moment a holder may start another effect under its lease: the lease less its
    margin (default ``settings.LEASE_MARGIN_SECONDS``), i.e. the longest function timeout after
    the claim. An attempt past it would have been stopped by the platform: it is a late
    finisher and starts nothing more. Pure."""
    margin = settings.LEASE_MARGIN_SECONDS if margin_seconds is None else margin_seconds
    return lease_until - dt.timedelta(seconds=margin)


def claim(
    db,
    ref,
    shape: Shape,
    *,
    document: type[Document],
    lease_seconds: float = settings.LEASE_SECONDS,
    fields: Callable[[dict[str, Any] | None, dt.datetime], dict[str, Any]] = lambda record, now: {},
    digest: str | None = None,
    merge: bool = False,
    now: dt.datetime | None = None,
) -> Claim:
    """Decides in a transaction and, when the work may run, takes the record in it.

    Taking writes the running state, a fresh holder token, a lease of ``lease_seconds``
    from the real clock and the payload hash, with ``fields(record, started)`` (the kind's
    own fields; ``record`` is None for a new one; ``started`` is the real clock), merged
    into the record or replacing it, through ``document`` (the record's model, which
    declares every field written). ``now`` is the clock an existing lease is judged by
    (default: the real clock at each transaction attempt); it never sets a lease.
    Returns a ``Claim``."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    if shape.state is None or shape.running is None or shape.lease is None:
        raise ValueError("claim needs a shape with a running state and a lease")
    holder = uuid.uuid4().hex

    @gcf.transactional
    def take(txn) -> Claim:
        snap = ref.get(transaction=txn)
        record = snap.to_dict() if snap.exists else None
        taken, written = taking(shape, record, now=now, started=clock.utcnow(), lease_seconds=lease_seconds,
                                holder=holder, digest=digest, fields=fields)
        if written is not None:
            # Merged: some of the record's fields; replacing it: the whole record, validated.
            txn.set(ref, document.fields(written) if merge else document.new(written), merge=merge)
        return taken

    return take(db.transaction())


def taking(
    shape: Shape,
    record: dict[str, Any] | None,
    *,
    now: dt.datetime | None,
    started: dt.datetime,
    lease_seconds: float,
    holder: str,
    digest: str | None = None,
    fields: Callable[[dict[str, Any] | None, dt.datetime], dict[str, Any]] = lambda record, now: {},
) -> tuple[Claim, dict[str, Any] | None]:
    """``claim``'s decision and what it writes, given the record it read. Pure.

    An existing lease is judged by ``now`` (default ``started``); the new lease, the holder
    token and the kind's ``fields`` start at ``started``, the real clock, whatever ``now`` says."""
    decision = decide(shape, record, now or started, digest)
    if decision != RUN:
        return Claim(decision, record), None
    until = lease_end(started, lease_seconds)
    written = {**fields(record, started), shape.state: shape.running, shape.lease: until}
    if shape.holder is not None:
        written[shape.holder] = holder
    if shape.payload_hash is not None and digest is not None:
        written[shape.payload_hash] = digest
    return Claim(decision, record, holder, until), written


def finish(db, ref, shape: Shape, holder: str | None, fields: dict[str, Any], *,
           document: type[Document]) -> tuple[bool, dict[str, Any] | None]:
    """An attempt's final write (done, processed, failed): in a transaction, ``fields`` are
    written only while the record is still running under ``holder`` (``holds``), through
    ``document`` (the record's model: a field it does not declare is refused before the
    transaction). Returns whether they were, and the record as it was read, so a refused
    late finisher can say who holds it now."""
    from google.cloud import firestore as gcf  # noqa: PLC0415

    if shape.holder is None:
        raise ValueError("finish needs a shape with a holder")
    data = document.fields(fields)

    @gcf.transactional
    def write(txn) -> tuple[bool, dict[str, Any] | None]:
        snap = ref.get(transaction=txn)
        record = snap.to_dict() if snap.exists else None
        if not holds(shape, record, holder):
            return False, record
        txn.update(ref, data)
        return True, record

    return write(db.transaction())
