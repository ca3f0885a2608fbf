"""Health and metrics: what ``ops_health`` reports, as JSON or Prometheus text."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import bus, clock

# Up or down for anyone, from one read per instance at most this often: an unauthenticated
# caller can never make the suite read more than that.
LIVENESS_CACHE_SECONDS = 10.0
_liveness: dict[str, Any] = {}


def liveness(db, *, now: float | None = None) -> dict[str, str]:
    """{"status": "up" | "down"}: one read of ``ops_state/sweep``, cached per instance."""
    now = time.monotonic() if now is None else now
    if _liveness and now - _liveness["at"] < LIVENESS_CACHE_SECONDS:
        return {"status": _liveness["status"]}
    try:
        db.collection(bus.OPS_STATE).document("sweep").get()
        status = "up"
    except Exception:  # noqa: BLE001 - unreachable is the answer, not an error
        status = "down"
    _liveness.update(at=now, status=status)
    return {"status": status}


def snapshot(db, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Firestore reachability, per-subscriber backlog, dead letters, last sweep."""
    now = now or clock.utcnow()
    started = time.perf_counter()
    try:
        db.collection(bus.OPS_STATE).document("sweep").get()
        reachable = True
    except Exception:  # noqa: BLE001 - unreachable is the answer, not an error
        return {"status": "down", "firestore": {"reachable": False}}
    latency_ms = round((time.perf_counter() - started) * 1000, 2)

    subscribers = {name: {"domain": s.domain, "event_type": s.event_type.name, "processing": 0, "failed": 0,
                          "oldest_pending_age_seconds": 0.0} for name, s in sorted(bus.all_subscribers().items())}
    backlog = db.collection(bus.DELIVERIES).where(filter=FieldFilter("status", "in", [bus.PROCESSING, bus.FAILED]))
    for snap in backlog.limit(5000).stream():
        d = snap.to_dict()
        row = subscribers.setdefault(d.get("subscriber", "?"), {"domain": d.get("domain"), "processing": 0, "failed": 0,
                                                                 "oldest_pending_age_seconds": 0.0})
        row[d["status"]] += 1
        created = d.get("created_time") or d.get("event_time")
        if created:
            row["oldest_pending_age_seconds"] = max(row["oldest_pending_age_seconds"], (now - created).total_seconds())
    dead = db.collection(bus.DEAD_LETTERS).where(filter=FieldFilter("status", "==", "dead")).count().get()[0][0].value
    dead_by = {}
    if dead:
        for snap in db.collection(bus.DEAD_LETTERS).where(filter=FieldFilter("status", "==", "dead")).limit(1000).stream():
            name = snap.get("subscriber")
            dead_by[name] = dead_by.get(name, 0) + 1
    for name, row in subscribers.items():
        row["dead_letters"] = dead_by.get(name, 0)
        row["oldest_pending_age_seconds"] = round(row["oldest_pending_age_seconds"], 1)
    sweep = db.collection(bus.OPS_STATE).document("sweep").get()
    last_sweep = sweep.get("last_sweep_time") if sweep.exists else None
    pending = sum(r["processing"] + r["failed"] for r in subscribers.values())
    return {
        "status": "up" if reachable else "down",
        "time": now.isoformat(),
        "firestore": {"reachable": reachable, "latency_ms": latency_ms},
        "totals": {"pending": pending, "dead_letters": dead},
        "subscribers": subscribers,
        "last_sweep": {"time": last_sweep.isoformat() if last_sweep else None,
                       "age_seconds": round((now - last_sweep).total_seconds(), 1) if last_sweep else None,
                       "counts": sweep.get("last_counts") if sweep.exists and "last_counts" in sweep.to_dict() else None},
    }


def prometheus(report: dict[str, Any]) -> str:
    """The same report in Prometheus' text exposition format."""
    lines = [
        "# HELP flowsuite_up 1 when Firestore answers.",
        "# TYPE flowsuite_up gauge",
        f"flowsuite_up {1 if report.get('status') == 'up' else 0}",
    ]
    if "firestore" in report and "latency_ms" in report["firestore"]:
        lines += ["# HELP flowsuite_firestore_latency_ms Latency of a health read.",
                  "# TYPE flowsuite_firestore_latency_ms gauge",
                  f"flowsuite_firestore_latency_ms {report['firestore']['latency_ms']}"]
    metrics = {
        "processing": ("flowsuite_deliveries_processing", "Deliveries being handled now."),
        "failed": ("flowsuite_deliveries_failed", "Deliveries waiting for a retry."),
        "dead_letters": ("flowsuite_dead_letters", "Dead letters waiting for an admin."),
        "oldest_pending_age_seconds": ("flowsuite_oldest_pending_age_seconds", "Age of the oldest pending delivery."),
    }
    for key, (metric, help_text) in metrics.items():
        if not report.get("subscribers"):
            break
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        for name, row in report.get("subscribers", {}).items():
            lines.append(f'{metric}{{subscriber="{name}",domain="{row.get("domain")}"}} {row.get(key, 0)}')
    age = (report.get("last_sweep") or {}).get("age_seconds")
    if age is not None:
        lines += ["# HELP flowsuite_last_sweep_age_seconds Seconds since the bus sweep last ran.",
                  "# TYPE flowsuite_last_sweep_age_seconds gauge", f"flowsuite_last_sweep_age_seconds {age}"]
    return "\n".join(lines) + "\n"
