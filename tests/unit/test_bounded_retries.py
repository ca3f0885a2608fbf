"""Every failure ends: attempts for a plain failure, age for a "retry later", at once for a domain error."""

import datetime as dt

import pytest
from flowsuite.core import bus
from flowsuite.core.errors import NotFoundError, RetryLaterError
from flowsuite.ops.service import erasure_wait

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(hours=72)
MID = lambda: 0.5  # noqa: E731 - no jitter


def plan(attempt: int, *, since=NOW, now=NOW, permanent=False, retry_later=False, max_attempts=3, max_age=DAY):
    return bus.failure_plan(attempt=attempt, failing_since=since, now=now, permanent=permanent,
                            retry_later=retry_later, max_attempts=max_attempts, max_age=max_age,
                            base_seconds=10, rand=MID)


def test_a_plain_failure_is_retried_until_its_attempts_run_out():
    assert plan(1) == bus.FailurePlan(False, "retry", NOW + dt.timedelta(seconds=10))
    assert plan(2).retry_at == NOW + dt.timedelta(seconds=20)
    assert plan(3) == bus.FailurePlan(True, "attempts", None)


def test_a_domain_error_is_dead_at_once():
    assert plan(1, permanent=True) == bus.FailurePlan(True, "permanent", None)


def test_a_retry_later_does_not_use_up_attempts_but_ends_at_the_maximum_age():
    assert not plan(3, retry_later=True).dead
    assert not plan(50, retry_later=True, now=NOW + DAY - dt.timedelta(seconds=1)).dead
    assert plan(50, retry_later=True, now=NOW + DAY) == bus.FailurePlan(True, "age", None)


def test_a_retry_is_never_scheduled_past_the_deadline():
    late = NOW + DAY - dt.timedelta(seconds=5)
    assert plan(20, retry_later=True, now=late).retry_at == NOW + DAY
    assert plan(21, retry_later=True, now=NOW + DAY).dead


def test_the_age_bounds_plain_failures_too():
    assert plan(2, max_attempts=100, now=NOW + DAY).reason == "age"


def test_a_retry_later_may_ask_for_a_shorter_wait(monkeypatch):
    monkeypatch.delenv("BUS_MAX_RETRY_HOURS", raising=False)
    assert bus.max_failing_age(RuntimeError("x")) == dt.timedelta(hours=72)
    assert bus.max_failing_age(RetryLaterError("x")) == dt.timedelta(hours=72)
    assert bus.max_failing_age(RetryLaterError("x", max_wait_seconds=60)) == dt.timedelta(seconds=60)
    monkeypatch.setenv("BUS_MAX_RETRY_HOURS", "1")
    assert bus.max_failing_age(RetryLaterError("x", max_wait_seconds=7200)) == dt.timedelta(hours=1)
    assert bus.max_failing_age(NotFoundError("x")) == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({"a": "processed", "b": "processed"}, ([], [])),
        ({"a": "processed", "b": None}, (["b"], [])),
        ({"a": "failed", "b": "processing"}, (["a", "b"], [])),
        ({"a": "dead", "b": "failed", "c": "processed"}, (["a", "b"], ["a"])),
        ({}, ([], [])),
    ],
)
def test_the_last_eraser_waits_for_the_others_and_names_the_dead_ones(statuses, expected):
    assert erasure_wait(statuses) == expected


def test_the_last_eraser_waits_a_bounded_time(monkeypatch):
    monkeypatch.delenv("ERASURE_MAX_WAIT_HOURS", raising=False)
    monkeypatch.delenv("BUS_MAX_RETRY_HOURS", raising=False)
    from flowsuite.core import settings

    waiting = RetryLaterError("x", max_wait_seconds=settings.int_value(settings.ERASURE_MAX_WAIT_HOURS) * 3600)
    age = bus.max_failing_age(waiting)
    assert age == dt.timedelta(hours=24)
    assert plan(500, retry_later=True, now=NOW + age, max_age=age).reason == "age"
