"""The console's charts: events per minute by type, delivery latency (p50/p95) per subscriber,
failures and dead letters over time, for the last hour or the last day (``ops_get_metrics``).

Where the numbers come from (the documents the bus writes anyway; nothing extra is written):

* events per minute: each event's ``time`` (``topics/{type}/events``, one collection-group query);
* delivery latency: ``processed_time - event_time`` of each processed delivery, from the
  event's publication to its processed mark (trigger delay, retries and the handler), bucketed
  by ``processed_time``;
* failures: the failed (and dead) attempts in each delivery's ``history``, by their ``at``;
* dead letters: each dead letter's ``created_time``.

Reads are bounded: each source is read newest first with only the fields needed, at most
``LIMITS`` documents per call (5,000 events, 5,000 deliveries, 1,000 dead letters: 11,000 reads
at most, about $0.007 at Firestore's list price of $0.06 per 100,000). When a source reaches its
limit, the answer says from when its series are complete (``complete_from``) and the buckets
before that are null (a gap in the chart, never a false zero). The console asks once per page
view or window switch, never live.

Bucketing and percentiles are pure, for unit tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from flowsuite.core import bus, clock, events

# window -> (seconds covered, bucket width in seconds): 60 one-minute buckets, or 96 of 15 minutes.
WINDOWS: dict[str, tuple[int, int]] = {"hour": (3600, 60), "day": (86400, 900)}
LIMITS: dict[str, int] = {"events": 5000, "deliveries": 5000, "dead_letters": 1000}
FAILED_OUTCOMES = frozenset({bus.FAILED, bus.DEAD})
ALL = "*"  # the latency row of every subscriber together


@dataclasses.dataclass(frozen=True)
class Buckets:
    """``count`` buckets of ``seconds`` each from ``start``; the last one holds now."""

    start: dt.datetime
    seconds: int
    count: int

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.seconds * self.count)

    def index(self, t: dt.datetime | None) -> int | None:
        """The bucket ``t`` falls in, or None outside the window. Pure."""
        if t is None:
            return None
        offset = (t - self.start).total_seconds()
        if offset < 0 or offset >= self.seconds * self.count:
            return None
        return int(offset // self.seconds)

    def times(self) -> list[int]:
        """Each bucket's start, in epoch seconds (the charts' x values)."""
        first = int(self.start.timestamp())
        return [first + i * self.seconds for i in range(self.count)]

    def first_complete(self, complete_from: dt.datetime | None) -> int:
        """The first bucket wholly read when a source stopped at its limit at ``complete_from``
        (the bucket holding it was read only in part). 0 when nothing was cut off."""
        if complete_from is None:
            return 0
        i = self.index(complete_from)
        if i is None:
            return 0 if complete_from < self.start else self.count
        return i + 1


def buckets_for(window: str, now: dt.datetime) -> Buckets:
    """The buckets of ``window`` ("hour" or "day") ending with the one that holds ``now``,
    aligned to whole buckets (minutes, quarter hours) in UTC. Pure."""
    seconds, width = WINDOWS[window]
    end = (int(now.timestamp()) // width + 1) * width
    return Buckets(dt.datetime.fromtimestamp(end - seconds, dt.UTC), width, seconds // width)


def percentile(values: Iterable[float], p: float) -> float | None:
    """The ``p``-th percentile by nearest rank (a value that was observed), None for no values. Pure."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _masked(series: list, first: int) -> list:
    return [None if i < first else v for i, v in enumerate(series)]


def events_per_minute(rows: Iterable[dict[str, Any]], buckets: Buckets,
                      complete_from: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Events per minute of each type in each bucket (``type``, ``time``), busiest type first. Pure."""
    counts: dict[str, list[int]] = {}
    for row in rows:
        i = buckets.index(row.get("time"))
        if i is None or not row.get("type"):
            continue
        counts.setdefault(row["type"], [0] * buckets.count)[i] += 1
    first, per = buckets.first_complete(complete_from), buckets.seconds / 60
    out = [{"type": kind, "total": sum(series), "per_minute": _masked([round(c / per, 3) for c in series], first)}
           for kind, series in counts.items()]
    return sorted(out, key=lambda s: (-s["total"], s["type"]))


def _latency_row(subscriber: str, samples: list[tuple[int, float]], buckets: Buckets, first: int) -> dict[str, Any]:
    by_bucket: list[list[float]] = [[] for _ in range(buckets.count)]
    for i, ms in samples:
        by_bucket[i].append(ms)
    values = [ms for _, ms in samples]
    return {
        "subscriber": subscriber,
        "count": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p50": _masked([percentile(b, 50) for b in by_bucket], first),
        "p95": _masked([percentile(b, 95) for b in by_bucket], first),
    }


def delivery_latency(rows: Iterable[dict[str, Any]], buckets: Buckets, subscribers: Iterable[str] = (),
                     complete_from: dt.datetime | None = None) -> list[dict[str, Any]]:
    """p50 and p95 of ``processed_time - event_time`` (ms) per subscriber, over the window and per
    bucket (by ``processed_time``); first the row of every subscriber together (``"*"``), then one
    per subscriber, those named in ``subscribers`` included when they processed nothing. Pure."""
    samples: dict[str, list[tuple[int, float]]] = {name: [] for name in subscribers}
    every: list[tuple[int, float]] = []
    for row in rows:
        done, published = row.get("processed_time"), row.get("event_time")
        i = buckets.index(done)
        if row.get("status") != bus.PROCESSED or i is None or published is None or not row.get("subscriber"):
            continue
        sample = (i, round(max(0.0, (done - published).total_seconds() * 1000), 1))
        samples.setdefault(row["subscriber"], []).append(sample)
        every.append(sample)
    first = buckets.first_complete(complete_from)
    return [_latency_row(ALL, every, buckets, first)] + [
        _latency_row(name, samples[name], buckets, first) for name in sorted(samples)]


def failures(rows: Iterable[dict[str, Any]], buckets: Buckets,
             complete_from: dt.datetime | None = None) -> list[int | None]:
    """Failed attempts (retried or dead-lettered) per bucket, from each delivery's history. Pure."""
    counts = [0] * buckets.count
    for row in rows:
        for entry in row.get("history") or []:
            i = buckets.index(entry.get("at")) if isinstance(entry, dict) else None
            if i is not None and entry.get("outcome") in FAILED_OUTCOMES:
                counts[i] += 1
    return _masked(counts, buckets.first_complete(complete_from))


def dead_letters(rows: Iterable[dict[str, Any]], buckets: Buckets,
                 complete_from: dt.datetime | None = None) -> list[int | None]:
    """Dead letters created per bucket. Pure."""
    counts = [0] * buckets.count
    for row in rows:
        i = buckets.index(row.get("created_time"))
        if i is not None:
            counts[i] += 1
    return _masked(counts, buckets.first_complete(complete_from))


def aggregate(window: str, buckets: Buckets, sources: dict[str, tuple[list[dict[str, Any]], dt.datetime | None]],
              subscribers: Iterable[str] = ()) -> dict[str, Any]:
    """The answer of ``ops_get_metrics`` from the rows read: ``sources`` maps events,
    deliveries and dead_letters to (rows, complete_from). Pure."""
    ev, ev_from = sources["events"]
    dl, dl_from = sources["deliveries"]
    dead, dead_from = sources["dead_letters"]
    return {
        "window": window,
        "start": buckets.start,
        "end": buckets.end,
        "bucket_seconds": buckets.seconds,
        "times": buckets.times(),
        "events": events_per_minute(ev, buckets, ev_from),
        "latency": delivery_latency(dl, buckets, subscribers, dl_from),
        "failures": failures(dl, buckets, dl_from),
        "dead_letters": dead_letters(dead, buckets, dead_from),
        "reads": {name: len(rows) for name, (rows, _) in sources.items()},
        "limits": dict(LIMITS),
        "complete_from": {name: since for name, (_, since) in sources.items()},
    }


def _newest(query, field: str, since: dt.datetime, limit: int, fields: list[str]):
    """Documents with ``field >= since``, newest first, at most ``limit``, only ``fields``; and
    the time from which they are complete (None unless the limit cut the window short)."""
    from google.cloud.firestore_v1.base_query import FieldFilter  # noqa: PLC0415

    rows = [snap.to_dict() or {} for snap in (
        query.where(filter=FieldFilter(field, ">=", since)).order_by(field, direction="DESCENDING")
        .limit(limit).select(fields).stream())]
    return rows, (rows[-1].get(field) if len(rows) >= limit else None)


def read(db, *, window: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """Reads the window's documents (bounded by ``LIMITS``) and aggregates them."""
    buckets = buckets_for(window, now or clock.utcnow())
    sources = {
        "events": _newest(db.collection_group(events.EVENTS), "time", buckets.start, LIMITS["events"],
                          ["type", "time"]),
        "deliveries": _newest(db.collection(bus.DELIVERIES), "updated_time", buckets.start, LIMITS["deliveries"],
                              ["subscriber", "status", "event_time", "processed_time", "updated_time", "history"]),
        "dead_letters": _newest(db.collection(bus.DEAD_LETTERS), "created_time", buckets.start,
                                LIMITS["dead_letters"], ["created_time", "subscriber"]),
    }
    return aggregate(window, buckets, sources, subscribers=bus.all_subscribers())
