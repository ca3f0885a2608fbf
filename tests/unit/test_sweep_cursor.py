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
