"""Refunds that fail at Stripe after the fact (Stripe's "Refund failures": a refund can start
pending or succeeded and later become failed or canceled). The pure decisions are here; the
whole sequence, with the stand-in's refund-failure test card, runs on the emulators
(tests/integration/test_payment_lifecycle.py::test_a_refund_that_fails_at_stripe_is_undone_flagged_and_alerted)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from flowsuite.notifications.templates import TEMPLATES
from flowsuite.orders import service as orders
from flowsuite.payments import service as payments


@pytest.mark.parametrize(("recorded", "reported", "advances"), [
    (None, "succeeded", True),
    (None, "failed", True),  # a failure seen first (its earlier events are late)
    (None, "requires_action", True),
    ("requires_action", "pending", True),
    ("pending", "succeeded", True),
    ("pending", "failed", True),
    ("succeeded", "failed", True),  # Stripe: a refund that succeeded can still fail
    ("succeeded", "canceled", True),
    ("failed", "succeeded", False),  # a late "succeeded" never undoes a failure
    ("failed", "pending", False),
    ("canceled", "succeeded", False),
    ("failed", "canceled", False),  # both final: the first one stands
    ("canceled", "failed", False),
    ("succeeded", "pending", False),  # older
    ("succeeded", "succeeded", False),
    ("failed", "failed", False),  # a repeat (refund.failed after charge.refund.updated)
    (None, "something_new", False),
    ("pending", "", False),
])
def test_a_refund_status_only_moves_forward_and_never_out_of_a_failure(recorded, reported, advances):
    assert payments.refund_status_advances(recorded, reported) is advances


@pytest.mark.parametrize(("recorded", "at_stripe", "after"), [
    (2000, 0, 0),  # the whole refund failed
    (2000, 500, 500),  # one of two refunds failed
    (500, 0, 0),
    (0, 0, 0),  # failed before we recorded it
    (500, 1500, 500),  # Stripe counts a refund we have not recorded yet: its charge.refunded raises it
    (500, -3, 0),
])
def test_a_failed_refund_lowers_the_refunded_total_to_stripes_never_raises_it(recorded, at_stripe, after):
    assert payments.refunded_after_failure(recorded, at_stripe) == after


@pytest.mark.parametrize(("recorded", "at_stripe", "drift"), [
    (0, 2000, "up"), (500, 2000, "up"), (2000, 2000, "same"), (0, 0, "same"), (2000, 0, "down"), (2000, 500, "down"),
])
def test_reconciliation_sees_a_drift_both_ways(recorded, at_stripe, drift):
    assert payments.refund_drift(recorded, at_stripe) == drift


@pytest.mark.parametrize(("total", "status"), [(0, "succeeded"), (1, "partially_refunded"),
                                                (1999, "partially_refunded"), (2000, "refunded"), (2500, "refunded")])
def test_a_paid_payment_status_follows_what_is_refunded(total, status):
    assert payments.status_for_refunded(total, 2000) == status


def test_each_refund_attempt_after_a_failure_has_new_keys_and_a_retry_keeps_them():
    first = payments.refund_keys("pay_o1", 0)
    assert first == ("stripe-refund-pay_o1", "refund-pay_o1")  # the keys refunds always had: records kept
    assert payments.refund_keys("pay_o1", 0) == first  # a retry of the same attempt: the same refund at Stripe
    second, third = payments.refund_keys("pay_o1", 1), payments.refund_keys("pay_o1", 2)
    assert len({first, second, third}) == 3
    assert len({first[0], second[0], third[0]}) == 3 and len({first[1], second[1], third[1]}) == 3


@pytest.mark.parametrize(("failures", "ended", "unanswered"), [
    (0, 0, False),  # no refund failed: refund
    (1, 0, True),  # one failed and no request ended on it (it awaited the customer, or a crash): a dead letter
    (1, 1, False),  # the request ended on it, and this is the admin's replay: refund again
    (2, 1, True),  # the replay's refund failed too: a dead letter again
    (2, 2, False),
])
def test_a_refund_request_ends_on_a_failure_nobody_answered_and_a_replay_refunds_again(failures, ended, unanswered):
    assert payments.refund_failure_unanswered(failures, ended) is unanswered


def test_the_endpoint_subscribes_to_charge_refund_updated_and_the_other_refund_events_are_handled():
    assert "charge.refund.updated" in payments.SUBSCRIBED
    assert not {"refund.updated", "refund.failed"} & set(payments.SUBSCRIBED)
    assert {"charge.refund.updated", "refund.updated", "refund.failed"} <= set(payments.HANDLED)
    assert set(payments.SUBSCRIBED) <= set(payments.HANDLED)


def test_the_production_guide_lists_exactly_the_events_the_endpoint_needs():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "production.md").read_text()
    step = text[text.index("**Stripe webhook**"):text.index("put its signing secret")]
    listed = re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", step.split("(`service.SUBSCRIBED`")[0])
    assert listed == list(payments.SUBSCRIBED)


# ---- the order's side --------------------------------------------------------------------

def failure(**fields):
    return SimpleNamespace(**{"payment_id": "pay_o1", "order_id": "o1", "uid": "u1", "refund_id": "re_1",
                              "status": "failed", "reason": "expired_or_canceled_card", "amount": 2000,
                              "currency": "usd", "amount_refunded": 0, **fields})


NOW = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
FAILED_AT = NOW - dt.timedelta(seconds=3)


def test_an_order_whose_refund_failed_is_flagged_and_shows_what_is_refunded_now():
    fields = orders.refund_failure_fields({"payment_id": "pay_o1", "amount_refunded": 2000, "status": "refunded"},
                                          failure(), FAILED_AT, NOW)
    assert (fields["needs_review"], fields["review_reason"]) == (True, "refund_failed")
    assert fields["amount_refunded"] == 0 and fields["refund_failure_reason"] == "expired_or_canceled_card"
    assert fields["refund_failed_time"] == FAILED_AT  # when the failure was published, to order later refunds
    assert "status" not in fields  # the order keeps its status; the flag says what is wrong


def test_an_order_never_takes_a_higher_total_nor_another_payments_from_a_failure():
    assert orders.refund_failure_fields({"payment_id": "pay_o1", "amount_refunded": 500}, failure(amount_refunded=900),
                                        FAILED_AT, NOW)["amount_refunded"] == 500
    other = orders.refund_failure_fields({"payment_id": "pay_other", "amount_refunded": 0}, failure(), FAILED_AT, NOW)
    assert "amount_refunded" not in other and other["needs_review"] is True  # a rejected payment's refund
    canceled = orders.refund_failure_fields({"payment_id": "pay_o1"}, failure(status="canceled", reason=""),
                                            FAILED_AT, NOW)
    assert canceled["refund_failure_reason"] == "canceled"


@pytest.mark.parametrize(("published", "clears"), [
    (FAILED_AT + dt.timedelta(seconds=1), True),  # a refund made after the failure
    (FAILED_AT, False),
    (FAILED_AT - dt.timedelta(seconds=1), False),  # a late payment.refunded, perhaps of the refund that failed
    (None, False),
])
def test_only_a_refund_published_after_the_failure_clears_it(published, clears):
    flagged = {"needs_review": True, "review_reason": "refund_failed", "refund_failed_time": FAILED_AT}
    assert orders.refund_failure_resolved(flagged, published) is clears


@pytest.mark.parametrize(("latest", "superseded"), [
    (None, False),
    (FAILED_AT - dt.timedelta(seconds=1), False),  # the refund that failed, refunded before the failure
    (FAILED_AT, False),
    (FAILED_AT + dt.timedelta(seconds=1), True),  # a new full refund published after it: delivered first
])
def test_a_failure_behind_a_later_full_refund_flags_nothing(latest, superseded):
    assert orders.refund_failure_superseded({"full_refund_published_time": latest}, FAILED_AT) is superseded


def test_admins_are_told_what_failed_and_what_to_do():
    title, text, _ = TEMPLATES["refund_failed"].render(
        {"order_id": "o1", "payment_id": "pay_o1", "refund_id": "re_1", "status": "failed",
         "reason": "expired or canceled card", "amount": "$20.00", "refunded": "$0.00"})
    assert title == "Refund failed on order o1"
    assert "has not got the money back" in text and "re_1" in text and "Refunded of the payment now: $0.00" in text
    assert set(TEMPLATES["refund_failed"].channels) == {"inbox", "email"}


def test_our_refunds_name_the_project_as_our_intents_do():
    from flowsuite.payments import service

    assert service.refund_metadata("pay_1", "order_cancelled", "demo-a") == {
        "flowsuite_payment_id": "pay_1", "reason": "order_cancelled", "flowsuite_project": "demo-a"}
    assert service._names_ours(service.refund_metadata("pay_1", "x", "demo-a"), "demo-b") is None
    assert service._names_ours(service.refund_metadata("pay_1", "x", "demo-a"), "demo-a") == "pay_1"


def test_a_charge_read_for_a_step_is_stale_once_the_payment_recorded_another_refund():
    """The charge is read outside any transaction: a refund recorded meanwhile (its own event) is
    missing from it, and taking the lower of the two totals would drop that refund."""
    from flowsuite.payments import service

    payment = {"amount_refunded": 500, "refund_failures": 1}
    read = {"amount_refunded": 1000, service.READ_AGAINST: service.refund_state(payment)}
    assert service.charge_is_current(read, payment)
    assert not service.charge_is_current(read, {**payment, "amount_refunded": 800})  # a refund recorded meanwhile
    assert not service.charge_is_current(read, {**payment, "refund_failures": 2})  # a failure, the total unchanged
    assert service.charge_is_current({"amount_refunded": 0}, {"amount_refunded": 300})  # no mark: as before


def test_a_failure_covered_by_another_full_refund_flags_nothing():
    from flowsuite.payments import service

    assert service.failure_changes_nothing({"amount": 1000, "amount_refunded": 1000}, 1000)
    assert not service.failure_changes_nothing({"amount": 1000, "amount_refunded": 1000}, 0)  # the money went back
    assert not service.failure_changes_nothing({"amount": 1000, "amount_refunded": 500}, 500)  # partly refunded
    assert not service.failure_changes_nothing({"amount": 1000, "amount_refunded": 0}, 0)  # failed at creation


def test_a_payments_refunds_are_listed_by_their_recorded_status():
    from flowsuite.payments import service

    payment = {"refund_statuses": {"re_b": "failed", "re_a": "canceled", "re_c": "requires_action", "re_d": "succeeded"}}
    assert service.refunds_in(payment, service.REFUND_FAILED) == ["re_a", "re_b"]
    assert service.refunds_in(payment, {"requires_action"}) == ["re_c"]
    assert service.refunds_in({}, service.REFUND_FAILED) == []
