"""ops_get_metrics: the console's series, bucketed and summarised without I/O (flowsuite/ops/metrics.py)."""

import datetime as dt

import pytest
from flowsuite.ops import metrics, models

NOW = dt.datetime(2026, 3, 1, 12, 30, 20, tzinfo=dt.UTC)
HOUR = metrics.buckets_for("hour", NOW)
DAY = metrics.buckets_for("day", NOW)


def at(minutes_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_ago)


def test_an_hour_is_sixty_minutes_ending_with_the_current_one():
    assert (HOUR.seconds, HOUR.count) == (60, 60)
    assert HOUR.start == dt.datetime(2026, 3, 1, 11, 31, tzinfo=dt.UTC)
    assert HOUR.end == dt.datetime(2026, 3, 1, 12, 31, tzinfo=dt.UTC)
    assert HOUR.index(NOW) == 59 and HOUR.index(HOUR.start) == 0
    assert HOUR.index(HOUR.start - dt.timedelta(microseconds=1)) is None and HOUR.index(HOUR.end) is None
    assert HOUR.index(None) is None
    times = HOUR.times()
    assert len(times) == 60 and times[0] == int(HOUR.start.timestamp()) and times[1] - times[0] == 60


def test_a_day_is_ninety_six_quarter_hours():
    assert (DAY.seconds, DAY.count) == (900, 96)
    assert DAY.end == dt.datetime(2026, 3, 1, 12, 45, tzinfo=dt.UTC)
    assert DAY.start == DAY.end - dt.timedelta(days=1)
    assert DAY.index(NOW) == 95 and DAY.index(at(15)) == 94


def test_a_time_on_a_bucket_boundary_opens_the_next_bucket():
    on_the_minute = metrics.buckets_for("hour", dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC))
    assert on_the_minute.end == dt.datetime(2026, 3, 1, 12, 1, tzinfo=dt.UTC)
    assert on_the_minute.index(dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)) == 59


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([], 50, None),
    ([7.0], 50, 7.0),
    ([7.0], 95, 7.0),
    ([1, 2, 3, 4], 50, 2),  # nearest rank: ceil(0.5 * 4) = 2nd
    ([4, 3, 2, 1], 50, 2),  # order does not matter
    ([1, 2, 3, 4, 5], 50, 3),
    (list(range(1, 101)), 95, 95),
    (list(range(1, 101)), 99, 99),
    (list(range(1, 21)), 95, 19),  # ceil(0.95 * 20) = 19th
    ([10, 20], 0, 10),
    ([10, 20], 100, 20),
])
def test_percentiles_are_by_nearest_rank(values, p, expected):
    assert metrics.percentile(values, p) == expected


def test_events_per_minute_by_type_busiest_first():
    rows = [{"type": "order.placed", "time": at(0.1)}, {"type": "order.placed", "time": at(0.2)},
            {"type": "order.paid", "time": at(10)}, {"type": "order.placed", "time": at(61)},  # outside
            {"type": None, "time": at(1)}, {"time": at(1)}, {"type": "order.paid", "time": None}]
    series = metrics.events_per_minute(rows, HOUR)
    assert [s["type"] for s in series] == ["order.placed", "order.paid"]
    placed, paid = series
    assert placed["total"] == 2 and placed["per_minute"][59] == 2 and sum(placed["per_minute"]) == 2
    assert paid["total"] == 1 and paid["per_minute"][HOUR.index(at(10))] == 1
    assert len(placed["per_minute"]) == 60


def test_a_day_reports_events_per_minute_averaged_over_its_quarter_hours():
    rows = [{"type": "order.placed", "time": at(1)} for _ in range(30)]
    (placed,) = metrics.events_per_minute(rows, DAY)
    assert placed["total"] == 30 and placed["per_minute"][DAY.index(at(1))] == 2.0  # 30 in 15 minutes
    assert DAY.index(at(1)) == 94  # 12:29 is in the quarter 12:15-12:30


def test_a_source_cut_off_by_its_limit_leaves_gaps_not_zeros_before_it_is_complete():
    rows = [{"type": "order.placed", "time": at(m)} for m in (1, 2, 3)]
    (placed,) = metrics.events_per_minute(rows, HOUR, complete_from=at(3))
    first = HOUR.index(at(3)) + 1  # the bucket holding the cut was read only in part
    assert all(v is None for v in placed["per_minute"][:first])
    assert placed["per_minute"][first:] == [0] * (57 - first) + [1, 1, 0]
    assert HOUR.first_complete(None) == 0
    assert HOUR.first_complete(HOUR.start - dt.timedelta(hours=1)) == 0


def delivery(subscriber, published, processed, status="processed", history=()):
    return {"subscriber": subscriber, "status": status, "event_time": published, "processed_time": processed,
            "updated_time": processed, "history": list(history)}


def test_latency_is_publication_to_processed_mark_per_subscriber_and_for_all():
    ms = dt.timedelta(milliseconds=1)
    rows = [delivery("orders_on_payment_succeeded", at(1), at(1) + 40 * ms),
            delivery("orders_on_payment_succeeded", at(1), at(1) + 60 * ms),
            delivery("orders_on_payment_succeeded", at(5), at(5) + 1000 * ms),
            delivery("notifications_on_order_paid", at(2), at(2) + 200 * ms),
            delivery("notifications_on_order_paid", at(2), None, status="failed"),  # not processed: no sample
            delivery("notifications_on_order_paid", at(90), at(90) + ms),  # outside the window
            delivery("clock_skew", at(1), at(1) - 5 * ms)]  # never negative
    rows_by_name = {r["subscriber"]: r for r in metrics.delivery_latency(rows, HOUR, subscribers=["idle_subscriber"])}
    assert list(rows_by_name)[0] == metrics.ALL
    every = rows_by_name[metrics.ALL]
    assert every["count"] == 5 and every["p50_ms"] == 60.0 and every["p95_ms"] == 1000.0
    paid = rows_by_name["orders_on_payment_succeeded"]
    assert (paid["count"], paid["p50_ms"], paid["p95_ms"]) == (3, 60.0, 1000.0)
    assert paid["p50"][HOUR.index(at(1))] == 40.0 and paid["p95"][HOUR.index(at(1))] == 60.0
    assert paid["p50"][HOUR.index(at(5))] == 1000.0
    assert paid["p50"][0] is None  # no sample in that minute: a gap
    receipt = rows_by_name["notifications_on_order_paid"]
    assert (receipt["count"], receipt["p95_ms"]) == (1, 200.0)
    assert rows_by_name["clock_skew"]["p50_ms"] == 0.0
    idle = rows_by_name["idle_subscriber"]
    assert idle["count"] == 0 and idle["p50_ms"] is None and set(idle["p95"]) == {None}


def test_failures_count_failed_and_dead_attempts_from_the_history():
    history = [{"attempt": 1, "outcome": "failed", "at": at(3)}, {"attempt": 2, "outcome": "failed", "at": at(2)},
               {"attempt": 3, "outcome": "dead", "at": at(1)}, {"attempt": 4, "outcome": "processed", "at": at(0.5)},
               {"attempt": 0, "outcome": "failed", "at": at(120)}, "not a map"]
    series = metrics.failures([delivery("s", at(3), at(0.5), history=history), {"subscriber": "t"}], HOUR)
    assert sum(series) == 3
    assert [series[HOUR.index(at(m))] for m in (3, 2, 1)] == [1, 1, 1]


def test_dead_letters_count_by_creation():
    rows = [{"created_time": at(1)}, {"created_time": at(1)}, {"created_time": at(30)}, {"created_time": None}]
    series = metrics.dead_letters(rows, HOUR)
    assert sum(series) == 3 and series[HOUR.index(at(1))] == 2


def test_the_answer_fits_its_model_and_says_what_was_read():
    sources = {
        "events": ([{"type": "order.placed", "time": at(1)}], None),
        "deliveries": ([delivery("orders_on_order_placed", at(1), at(1) + dt.timedelta(seconds=1))], None),
        "dead_letters": ([{"created_time": at(1), "subscriber": "x"}], at(1)),
    }
    answer = metrics.aggregate("hour", HOUR, sources, subscribers=["orders_on_order_placed"])
    parsed = models.MetricsAnswer.model_validate(answer)
    assert parsed.reads == {"events": 1, "deliveries": 1, "dead_letters": 1}
    assert parsed.limits == metrics.LIMITS and parsed.complete_from["dead_letters"] == at(1)
    assert len(parsed.times) == len(parsed.failures) == len(parsed.dead_letters) == 60
    assert parsed.latency[1].subscriber == "orders_on_order_placed" and parsed.latency[1].p50_ms == 1000.0
    # cut off at 12:29:20: that minute and every one before it are unknown, the current one is 0
    assert parsed.dead_letters[58] is None and set(parsed.dead_letters[:58]) == {None} and parsed.dead_letters[59] == 0


class FakeQuery:
    """Just enough of a Firestore query to check what is read: filters, order, limit, fields."""

    def __init__(self, name, docs, log):
        self.name, self.docs, self.log = name, docs, log

    def where(self, *, filter):  # noqa: A002 - the SDK's keyword
        self.log.append((self.name, "where", filter.field_path, filter.op_string, filter.value))
        return self

    def order_by(self, field, direction):
        self.log.append((self.name, "order_by", field, direction))
        return self

    def limit(self, n):
        self.log.append((self.name, "limit", n))
        self.docs = self.docs[:n]
        return self

    def select(self, fields):
        self.log.append((self.name, "select", tuple(fields)))
        return self

    def stream(self):
        return [type("Snap", (), {"to_dict": lambda self, d=d: d})() for d in self.docs]


class FakeStore:
    def __init__(self, docs):
        self.docs, self.log = docs, []

    def collection_group(self, name):
        return FakeQuery(f"group:{name}", self.docs.get(name, []), self.log)

    def collection(self, name):
        return FakeQuery(name, self.docs.get(name, []), self.log)


def test_reads_are_bounded_newest_first_and_a_full_page_marks_where_the_series_start(monkeypatch):
    monkeypatch.setattr(metrics, "LIMITS", {"events": 2, "deliveries": 5, "dead_letters": 5})
    store = FakeStore({"events": [{"type": "order.placed", "time": at(m)} for m in (1, 2, 3)]})
    answer = metrics.read(store, window="hour", now=NOW)
    assert answer["reads"] == {"events": 2, "deliveries": 0, "dead_letters": 0}
    assert answer["complete_from"] == {"events": at(2), "deliveries": None, "dead_letters": None}
    assert ("group:events", "limit", 2) in store.log and ("deliveries", "limit", 5) in store.log
    for name, field in (("group:events", "time"), ("deliveries", "updated_time"), ("dead_letters", "created_time")):
        assert (name, "where", field, ">=", HOUR.start) in store.log
        assert (name, "order_by", field, "DESCENDING") in store.log
    selected = {entry[0]: entry[2] for entry in store.log if entry[1] == "select"}
    assert selected["group:events"] == ("type", "time") and "history" in selected["deliveries"]


def test_the_window_is_hour_or_day_only():
    assert models.GetMetrics().window == "hour"
    assert models.GetMetrics(window="day").window == "day"
    with pytest.raises(ValueError):
        models.GetMetrics(window="week")
