"""Fault injection for tests of recovery, honoured only under the emulators.

A document ``_faults/{point}`` makes ``maybe_fail(point)`` raise: ``{always: true}``
on every pass, or ``{remaining: n}`` for the next n passes. Points are a
subscriber's name (before its handler runs) or a named step such as
``payments.after_stripe_intent``. In production this is a no-op without I/O; so it is
with ``FLOWSUITE_FAULTS=off`` (under the emulators, each pass is a transaction).
"""

from __future__ import annotations

from flowsuite.core import clients, metering, settings

COLLECTION = "_faults"


class InjectedFaultError(RuntimeError):
    """Raised by fault injection (emulator only)."""


def maybe_fail(point: str, *, db=None) -> None:
    if not settings.faults_enabled():
        return
    from google.cloud import firestore as gcf  # noqa: PLC0415

    db = db or clients.firestore()
    ref = db.collection(COLLECTION).document(point)

    @gcf.transactional
    def take(txn) -> bool:
        snap = ref.get(transaction=txn)
        if not snap.exists:
            return False
        fault = snap.to_dict()
        if fault.get("always"):
            return True
        remaining = int(fault.get("remaining", 0))
        if remaining <= 0:
            return False
        txn.update(ref, {"remaining": remaining - 1})
        return True

    with metering.paused():  # production never reads this
        fired = take(db.transaction())
    if fired:
        raise InjectedFaultError(f"fault injected at {point}")
