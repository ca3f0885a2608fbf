"""The functions emulator's workers killed mid-flow: the sweep delivers what they dropped.

It kills every Python worker of this suite while events are in flight; the emulator
starts new workers for later triggers, and the test ends only once a callable answers
again, so it may run in any order.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
import uuid

import psutil
import requests

from testkit import harness
from testkit.harness import CallableError, TransportError, call, eventually


def suite_workers() -> list[int]:
    """This suite's functions workers (psutil: /proc on Linux, sysctl on macOS)."""
    tag = os.environ.get("FLOWSUITE_SUITE_TAG", "")
    pids = []
    for proc in psutil.process_iter():
        try:
            if "functions-framework" in " ".join(proc.cmdline()) and proc.environ().get("FLOWSUITE_SUITE_TAG") == tag:
                pids.append(proc.pid)
        except psutil.Error:
            continue
    return pids


def test_events_in_flight_when_the_workers_die_are_delivered_by_the_sweep(db):
    import flowsuite.ops.functions  # noqa: F401 - registers the subscribers for the in-process sweep
    from flowsuite.core import bus, events
    from flowsuite.ops.events import ProbeSent

    assert os.environ.get("FLOWSUITE_SUITE_TAG"), "run inside the suite (make test)"
    ids = [f"crash-{i}-{uuid.uuid4().hex[:6]}" for i in range(40)]
    batch = db.batch()
    for probe_id in ids:
        batch.set(db.document(f"ops_probes/{probe_id}"), {"probe_id": probe_id, "received": 0})
        events.publish(batch, ProbeSent(probe_id=probe_id), subject=f"ops_probes/{probe_id}", db=db)
    batch.commit()
    killed: set[int] = set()
    deadline = time.monotonic() + 4  # keep killing while the triggers run
    while time.monotonic() < deadline:
        for pid in suite_workers():
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    assert killed, "no functions worker was running"
    time.sleep(2)

    def swept():
        # Each sweep runs 15 minutes after the last (inside the lost window): every lease has expired,
        # including one an earlier sweep took for a redelivery the emulator's lock timeouts aborted.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15 * (len(counts) + 1))
        counts.append(bus.sweep(db=db, now=later))
        received = [harness.doc(db, f"ops_probes/{p}")["received"] for p in ids]
        return all(received) and received

    counts: list[dict] = []
    received = eventually(swept, timeout=90, interval=1, what="every probe delivered")
    assert received == [1] * len(ids), received  # none lost, none twice
    print(f"\ncrash: killed {len(killed)} workers; the sweeps found {counts}")
    eventually(serving, timeout=60, interval=1, what="the functions emulator serving again")


def serving() -> bool:
    try:
        return call("ops_ping", {}).get("ok") is True
    except (CallableError, TransportError, requests.RequestException):
        return False
