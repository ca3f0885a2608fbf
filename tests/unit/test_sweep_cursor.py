"""The sweep's lost-event cursor (issue 22): newest ranges first, a backlog kept, nothing older than the window."""

import datetime as dt

from flowsuite.core.bus.recover import lost_intervals, scan_state

T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def at(minutes: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def test_a_first_sweep_checks_the_whole_window():
    assert lost_intervals(None, window_start=at(0), lost_before=at(100)) == [(at(0), at(100))]


def test_the_next_sweep_checks_only_what_arrived_since():
    state = scan_state([], at(100))
    assert lost_intervals(state, window_start=at(0), lost_before=at(105)) == [(at(100), at(105))]


def test_a_full_page_leaves_a_backlog_checked_after_the_newest():
    state = scan_state([(at(0), at(60))], at(100))  # a full page of 100..60 seen, 0..60 left
    assert lost_intervals(state, window_start=at(0), lost_before=at(105)) == [(at(100), at(105)), (at(0), at(60))]


def test_the_backlog_never_reaches_older_than_the_window():
    state = scan_state([(at(0), at(60))], at(100))
    assert lost_intervals(state, window_start=at(30), lost_before=at(105)) == [(at(100), at(105)), (at(30), at(60))]
    assert lost_intervals(state, window_start=at(70), lost_before=at(105)) == [(at(100), at(105))]


def test_remaining_ranges_merge_into_one_backlog():
    assert scan_state([(at(100), at(103)), (at(0), at(40))], at(105)) == {
        "checked_to": at(105), "backlog_lo": at(0), "backlog_hi": at(103)}
    assert scan_state([], at(105))["backlog_lo"] is None


def test_an_idle_sweep_reads_nothing_new():
    state = scan_state([], at(100))
    assert lost_intervals(state, window_start=at(0), lost_before=at(100)) == []


class _OldestQuery:
    """The one query of ``oldest_pending_age``: filters, order and limit recorded."""

    def __init__(self, docs, fail=False):
        self.docs, self.fail, self.calls = docs, fail, []

    def collection(self, name):
        self.calls.append(("collection", name))
        return self

    def where(self, *, filter):  # noqa: A002 - the SDK's keyword
        self.calls.append(("where", filter.field_path, filter.op_string, tuple(filter.value)))
        return self

    def order_by(self, field):
        self.calls.append(("order_by", field))
        return self

    def limit(self, n):
        self.calls.append(("limit", n))
        return self

    def stream(self):
        if self.fail:
            raise ConnectionError("unreachable")
        return [type("Snap", (), {"get": lambda self, f, d=d: d[f]})() for d in self.docs]


def test_the_sweep_reports_how_long_the_oldest_pending_delivery_has_waited():
    from flowsuite.core.bus.recover import oldest_pending_age, pending_age

    assert pending_age(at(0), at(2)) == 120.0 and pending_age(None, at(2)) == 0.0
    assert pending_age(at(3), at(2)) == 0.0  # another instance's clock ahead: never negative
    db = _OldestQuery([{"event_time": at(0)}])
    assert oldest_pending_age(db, at(10)) == 600.0
    assert db.calls == [("collection", "deliveries"), ("where", "status", "in", ("processing", "failed")),
                        ("order_by", "event_time"), ("limit", 1)]  # one read, on the declared index
    assert oldest_pending_age(_OldestQuery([]), at(10)) == 0.0
    assert oldest_pending_age(_OldestQuery([], fail=True), at(10)) is None  # the sweep carries on


def test_the_oldest_pending_query_has_its_index():
    from flowsuite.core import indexes

    assert any(i.collection == "deliveries" and i.fields == (("status", "ASCENDING"), ("event_time", "ASCENDING"))
               for i in indexes.COMPOSITE)


def test_an_event_whose_redelivery_failed_is_checked_again_by_the_next_sweep():
    from flowsuite.core.bus.recover import retry_range

    failed = at(42) + dt.timedelta(microseconds=7)
    state = scan_state([retry_range(failed)], at(100))  # everything up to 100 seen, but 42.000007 failed
    ranges = lost_intervals(state, window_start=at(0), lost_before=at(105))
    assert ranges[0] == (at(100), at(105))
    lo, hi = ranges[1]
    assert lo < failed <= hi and hi - lo == dt.timedelta(microseconds=1)  # the query is time > lo and time <= hi
