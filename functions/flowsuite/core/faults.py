"""Fault injection for tests of recovery, honoured only under the emulators.

A document ``_faults/{point}`` makes ``maybe_fail(point)`` raise: ``{always: true}``
on every pass, or ``{remaining: n}`` for the next n passes. Points are a
subscriber's name (before its handler runs) or a named step such as
``payments.after_stripe_intent``. With ``pause_seconds`` (a positive number, at most
``MAX_PAUSE_SECONDS``) a pass it fires on sleeps that long and then returns instead of
raising: the step is held, not failed, so a test can change the world meanwhile (delete
the account while a call waits between Stripe and Firestore). In production this is a
no-op without I/O; so it is with ``FLOWSUITE_FAULTS=off`` (under the emulators, each
pass is a transaction).
"""

from __future__ import annotations

import math
import time
from typing import Any

from flowsuite.core import clients, log, metering, settings

COLLECTION = "_faults"
MAX_PAUSE_SECONDS = 30.0  # well inside a callable's timeout (settings.CALLABLE_TIMEOUT_SECONDS)


class InjectedFaultError(RuntimeError):
    """Raised by fault injection (emulator only)."""


def pause_of(fault: dict[str, Any]) -> float | None:
    """What a fault that fired does: the seconds it pauses (``pause_seconds``, capped at
    ``MAX_PAUSE_SECONDS``), or None to raise (no pause, or not a positive number). Pure."""
    seconds = fault.get("pause_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or math.isnan(seconds) or seconds <= 0:
        return None
    return min(float(seconds), MAX_PAUSE_SECONDS)


def maybe_fail(point: str, *, db=None) -> None:
    if not settings.faults_enabled():
        return
    from google.cloud import firestore as gcf  # noqa: PLC0415

    db = db or clients.firestore()
    ref = db.collection(COLLECTION).document(point)

    @gcf.transactional
    def take(txn) -> dict[str, Any] | None:
        """The fault, when it fires on this pass."""
        snap = ref.get(transaction=txn)
        if not snap.exists:
            return None
        fault = snap.to_dict()
        if fault.get("always"):
            return fault
        remaining = int(fault.get("remaining", 0))
        if remaining <= 0:
            return None
        txn.update(ref, {"remaining": remaining - 1})
        return fault

    with metering.paused():  # production never reads this
        fired = take(db.transaction())
    if fired is None:
        return
    pause = pause_of(fired)
    if pause is None:
        raise InjectedFaultError(f"fault injected at {point}")
    log.info("fault injected: pausing", fault_point=point, pause_seconds=pause)
    time.sleep(pause)
