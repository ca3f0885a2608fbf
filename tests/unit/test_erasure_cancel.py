"""Deleting an account with an unpaid order that has no PaymentIntent yet: the closed payment
payments records for its cancel request names no one once the account is gone. The pure
decision is here; the whole sequence runs on the emulators (tests/integration/test_accounts.py
and test_orders.py::test_deleting_the_account_keeps_orders_without_the_person)."""

from __future__ import annotations

import pytest
from flowsuite.payments import service as payments

UID = "u-leaving-1"


@pytest.mark.parametrize(("uid", "profile", "gone"), [
    (UID, {"status": "active"}, False),
    (UID, {"status": "disabled"}, False),  # a disabled account still owns its payments
    (UID, {"status": "deleting"}, True),
    (UID, None, True),
    (payments.DELETED_USER, None, True),
])
def test_which_accounts_a_payment_record_may_name(uid, profile, gone):
    assert payments.account_gone(uid, profile) is gone
