"""Deleting an account with an unpaid order that has no PaymentIntent yet: the closed payment
payments records for its cancel request names no one once the account is gone; and a
payments_create_intent call in flight meanwhile records no payment, closes its intent and is
refused. The pure decisions are here; the whole sequences run on the emulators
(tests/integration/test_accounts.py and
test_orders.py::test_deleting_the_account_keeps_orders_without_the_person)."""

from __future__ import annotations

import pytest
from flowsuite.core import accounts
from flowsuite.payments import service as payments

UID = "u-leaving-1"


@pytest.mark.parametrize(("uid", "profile", "published", "gone"), [
    (UID, {"status": "active"}, False, False),
    (UID, {"status": "disabled"}, False, False),  # a disabled account still owns its payments
    (UID, {"status": "deleting"}, True, True),
    (UID, None, True, True),  # erased: the profile went after identity.user_deleted
    (UID, None, False, False),  # a live account without a profile (never made, removed by hand)
    (UID, {"status": "active"}, True, False),  # a profile back after its erasure: its next erasure covers it
    (accounts.DELETED_USER, None, False, True),
])
def test_which_accounts_a_payment_record_may_name(uid, profile, published, gone):
    assert accounts.account_gone(uid, profile, deletion_published=published) is gone


# ---- an intent created while its account was being deleted (payments_create_intent) --------

INTENT = "pi_made_by_this_call"


@pytest.mark.parametrize(("payment", "closes"), [
    (None, True),  # nothing recorded: only this call knows the intent
    ({"provider_ref": None, "status": "canceled"}, True),  # the order's cancel request recorded a closed payment
    ({"provider_ref": INTENT, "status": "requires_payment"}, True),  # an earlier call recorded it, unpaid
    ({"provider_ref": INTENT, "status": "canceled"}, True),  # closed already: closing again changes nothing
    ({"provider_ref": INTENT, "status": "succeeded"}, False),  # paid: the order is staff's to fulfil or refund
    ({"provider_ref": INTENT, "status": "partially_refunded"}, False),
    ({"provider_ref": "pi_another", "status": "requires_payment"}, False),  # not this call's intent
])
def test_which_intent_a_call_refused_for_a_deleted_account_closes(payment, closes):
    assert payments.closes_refused_intent(payment, INTENT) is closes


def test_a_payment_created_meanwhile_is_recognised_through_the_sdks_rollback_error():
    from google.api_core import exceptions as api_exceptions

    exists = api_exceptions.AlreadyExists("Document already exists: payments/pay_o1")
    assert payments.created_meanwhile(exists)
    rollback = api_exceptions.InvalidArgument("transaction not found")
    rollback.__context__ = exists  # the SDK rolls back after a failed commit; if that raises, this is what arrives
    assert payments.created_meanwhile(rollback)
    assert not payments.created_meanwhile(api_exceptions.Aborted("contention"))
    assert not payments.created_meanwhile(ValueError("Failed to commit transaction in 5 attempts"))
