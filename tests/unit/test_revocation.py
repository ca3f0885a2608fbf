"""Revoked means revoked; deleting an account needs a recent sign-in; reconciliation is safe."""

import pytest
from flowsuite.core.callables import CALLABLES, REVOKED, revocation_reason
from flowsuite.core.errors import FailedPreconditionError
from flowsuite.identity import config, service

NOW = 1_800_000_000


@pytest.mark.parametrize(("exists", "disabled", "valid_after_ms", "iat", "reason"), [
    (True, False, None, NOW, None),
    (True, False, 0, NOW, None),
    (True, False, NOW * 1000, NOW, None),  # issued in the second of the revocation: still valid, as Firebase
    (True, False, (NOW + 1) * 1000, NOW, "id-token-revoked"),
    (True, False, NOW * 1000, None, "id-token-revoked"),
    (True, True, None, NOW, "user-disabled"),
    (False, False, None, NOW, "user-not-found"),
])
def test_revocation_reasons(exists, disabled, valid_after_ms, iat, reason):
    claims = {"iat": iat} if iat is not None else {}
    assert revocation_reason(claims, exists=exists, disabled=disabled, valid_after_ms=valid_after_ms) == reason
    if reason:
        assert REVOKED[reason]


def test_every_callable_that_changes_something_or_needs_a_role_checks_revocation():
    import main  # noqa: F401 - registers every callable

    unchecked = {name for name, spec in CALLABLES.items() if not spec.checks_revocation}
    assert unchecked == {"ops_ping"}
    for name in ("ops_list_dead_letters", "ops_get_metrics", "ops_diagnose"):  # read-only, but admin only
        assert CALLABLES[name].read_only and CALLABLES[name].checks_revocation, name
    for name in ("orders_place", "orders_cancel", "payments_create_intent", "addFcmToken", "identity_delete_account",
                 "identity_set_role", "identity_sign_out_everywhere"):
        assert CALLABLES[name].checks_revocation, name


def test_deleting_an_account_needs_a_sign_in_of_the_last_five_minutes():
    service.require_recent_login({"auth_time": NOW - 299}, now=NOW, max_age_seconds=300)
    for claims in ({"auth_time": NOW - 301}, {}, {"auth_time": "recent"}, {"auth_time": True}):
        with pytest.raises(FailedPreconditionError) as err:
            service.require_recent_login(claims, now=NOW, max_age_seconds=300)
        assert err.value.details == {"reason": "requires-recent-login", "max_age_seconds": 300}
    assert (config.RECENT_LOGIN_SECONDS.name, config.RECENT_LOGIN_SECONDS.default) == (
        "IDENTITY_RECENT_LOGIN_SECONDS", 300)


@pytest.mark.parametrize(("checked", "limit"), [(0, 5), (2, 5), (50, 5), (60, 6), (1000, 100), (123_456, 12_345)])
def test_reconciliation_erases_at_most_a_share_of_the_profiles_it_checked(checked, limit):
    assert service.erase_limit(checked, percent=10, always=5) == limit


def test_reconciliation_limits_are_parameters():
    assert config.RECONCILE_MAX_ERASE_PERCENT.default == 10 and config.RECONCILE_ALWAYS_ERASE.default == 5


# ---- the orphan scan: push tokens and settings written after an account's erasure -------------

@pytest.mark.parametrize(("path", "uid"), [
    ("users/u1/fcm_tokens/t1", "u1"),
    ("users/u1/settings/notifications", "u1"),
    ("bookings/b1/settings/x", None),  # a collection group of the same name elsewhere
    ("users/u1/fcm_tokens/t1/more/x", None),
    ("fcm_tokens/t1", None),
])
def test_the_owner_of_a_per_user_document(path, uid):
    assert service.owner_of(path) == uid


def test_orphans_are_grouped_by_uid_with_their_earliest_creation():
    import datetime as dt

    t = [dt.datetime(2030, 1, 1, 12, m, tzinfo=dt.UTC) for m in range(4)]
    rows = [("users/a/fcm_tokens/1", t[2]), ("users/a/fcm_tokens/2", t[1]), ("users/b/settings/notifications", t[3]),
            ("shops/s/settings/x", t[0])]
    assert service.earliest_by_owner(rows) == {"a": t[1], "b": t[3]}
    assert service.earliest_by_owner([]) == {}


def test_an_erasure_covers_only_the_documents_that_existed_when_it_was_published():
    import datetime as dt

    published = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert service.erasure_covers(published, published - dt.timedelta(seconds=1))
    assert service.erasure_covers(published, published)
    assert not service.erasure_covers(published, published + dt.timedelta(seconds=1))  # written after it
    assert not service.erasure_covers(None, published)


def test_the_orphan_scan_covers_the_subcollections_the_app_writes_itself():
    from flowsuite.notifications import service as notifications

    assert service.ORPHAN_GROUPS == (notifications.TOKENS, notifications.SETTINGS)
