"""User data follows Auth (issue 22, point 3): the pure decisions behind the sign-in trigger,
reconciliation, identity_sync_profile and the email channel's address."""

from __future__ import annotations

import types

import pytest
from flowsuite.core import ids, settings
from flowsuite.core.errors import PermissionDeniedError
from flowsuite.identity import service
from flowsuite.notifications.service import usable_address


def profile(**fields) -> dict:
    return {"uid": "u1", "email": "ada@example.com", "role": "member", "status": "active", **fields}


def test_a_profile_in_step_with_auth_needs_nothing():
    assert service.auth_changes(profile(), email="ada@example.com", disabled=False) == {}
    # Auth's address is compared as the profile keeps it: trimmed, lower-cased
    assert service.auth_changes(profile(), email=" Ada@Example.COM ", disabled=False) == {}


def test_the_profile_takes_auths_email():
    assert service.auth_changes(profile(), email="New@Example.com", disabled=False) == {"email": "new@example.com"}
    assert service.auth_changes(profile(), email=None, disabled=False) == {"email": ""}


def test_an_anonymous_profile_without_an_email_field_gets_the_linked_address():
    anonymous = {k: v for k, v in profile().items() if k != "email"}  # FlutterFlow leaves a null email out
    assert service.auth_changes(anonymous, email=None, disabled=False) == {}
    assert service.auth_changes(anonymous, email="ada@example.com", disabled=False) == {"email": "ada@example.com"}
    assert service.auth_changes(profile(email={"not": "a string"}), email=None, disabled=False) == {}


@pytest.mark.parametrize(("status", "disabled", "wanted"), [
    ("disabled", False, {"status": "active"}),  # re-enabled in the console: no stale flag
    ("active", True, {"status": "disabled"}),  # disabled in the console
    ("active", False, {}),
    ("disabled", True, {}),
    (None, True, {}),  # a profile the app created and identity has not completed yet
])
def test_the_status_mirrors_auths_disabled(status, disabled, wanted):
    assert service.auth_changes(profile(status=status), email="ada@example.com", disabled=disabled) == wanted


def test_a_profile_being_deleted_is_left_alone():
    assert service.auth_changes(profile(status="deleting"), email="other@example.com", disabled=True) == {}


def test_the_first_address_has_one_event_id_per_person():
    assert service.first_email_event_id("u1") == service.first_email_event_id("u1")
    assert service.first_email_event_id("u1") not in (service.first_email_event_id("u2"), ids.person_key("u1"))
    assert "u1" not in service.first_email_event_id("u1")


def test_blocked_domains_come_from_one_parameter(monkeypatch):
    monkeypatch.setenv("BLOCKED_EMAIL_DOMAINS", " Blocked.test ,spam.example")
    assert settings.blocked_email_domain("x@BLOCKED.test") == "blocked.test"
    assert settings.blocked_email_domain("x@spam.example") == "spam.example"
    assert settings.blocked_email_domain("x@example.com") is None
    assert settings.blocked_email_domain(None) is None and settings.blocked_email_domain("no-at-sign") is None
    from flowsuite.identity import config

    assert config.BLOCKED_EMAIL_DOMAINS is settings.BLOCKED_EMAIL_DOMAINS  # declared once, for deploy


def auth_user(**fields):
    base = {"uid": "u1", "email": "ada@example.com", "email_verified": True, "disabled": False, "custom_claims": {}}
    return types.SimpleNamespace(**{**base, **fields})


def test_sign_in_refuses_a_disabled_account_or_a_blocked_address_before_reading_anything(monkeypatch):
    monkeypatch.setenv("BLOCKED_EMAIL_DOMAINS", "blocked.test")
    with pytest.raises(PermissionDeniedError, match="disabled"):
        service.on_sign_in(None, auth_user(disabled=True))
    with pytest.raises(PermissionDeniedError, match="Sign-ins from blocked.test are not allowed"):
        service.on_sign_in(None, auth_user(email="me@blocked.test"))  # an address changed or linked since sign-up
    with pytest.raises(PermissionDeniedError, match="Sign-ups from blocked.test"):
        service.check_sign_up_allowed("someone@blocked.test")


@pytest.mark.parametrize(("email", "wanted"), [
    ("ada@example.com", ("ada@example.com", "")),
    (" ada@example.com ", ("ada@example.com", "")),
    (None, (None, "no_address")),
    ("", (None, "no_address")),
    ("not-an-address", (None, "no_address")),
])
def test_the_email_goes_to_a_usable_address_or_says_why_not(email, wanted):
    assert usable_address(email) == wanted
