"""A sign-in never re-grants a role: the before-sign-in blocking function returns a role claim
only for a pending role it granted itself, and only while the profile still holds it (Firebase
saves returned claims after the function returns, so a role read earlier may be stale by then)."""

from __future__ import annotations

import types

import pytest
from flowsuite.identity import service


def auth_user(**fields):
    base = {"uid": "u1", "email": "boss@example.com", "email_verified": True, "disabled": False,
            "custom_claims": {"role": "member"}}
    return types.SimpleNamespace(**{**base, **fields})


def profile(**fields) -> dict:
    return {"uid": "u1", "email": "boss@example.com", "role": "member", "status": "active", **fields}


@pytest.fixture
def world(monkeypatch):
    """The profile reads a sign-in makes, in order, and the grants it asks for."""
    state = types.SimpleNamespace(reads=[], grants=[], granted=None)

    def record_of(db, uid):
        return state.reads.pop(0) if len(state.reads) > 1 else state.reads[0]

    def grant_pending_role(db, uid, *, email):
        state.grants.append(uid)
        return state.granted

    def follow_auth(db, uid, **kwargs):
        raise AssertionError("the profile is in step with Auth here")

    monkeypatch.setattr(service, "record_of", record_of)
    monkeypatch.setattr(service, "grant_pending_role", grant_pending_role)
    monkeypatch.setattr(service, "follow_auth", follow_auth)
    return state


@pytest.mark.parametrize("role", ["admin", "staff", "member"])
def test_a_sign_in_never_copies_the_profiles_role_to_the_claim(world, role):
    # read at the start of a sign-in that an identity_set_role may overtake: never returned
    world.reads = [profile(role=role)]
    assert service.on_sign_in(None, auth_user(custom_claims={"role": "member"})) is None
    assert world.grants == []


def test_no_profile_no_claim(world):
    world.reads = [None]
    assert service.on_sign_in(None, auth_user()) is None


def test_a_pending_role_granted_now_is_the_claim(world):
    world.reads, world.granted = [profile(pending_role="admin"), profile(role="admin")], "admin"
    assert service.on_sign_in(None, auth_user()) == "admin"
    assert world.grants == ["u1"]


def test_a_grant_overtaken_by_a_role_change_returns_no_claim(world):
    # granted in its transaction, then an admin's set_role (member) committed before the last read
    world.reads, world.granted = [profile(pending_role="admin"), profile(role="member")], "admin"
    assert service.on_sign_in(None, auth_user()) is None


def test_a_grant_that_found_nothing_to_grant_returns_no_claim(world):
    # set_role cleared pending_role first, or the email is no longer listed
    world.reads, world.granted = [profile(role="staff", pending_role="admin"), profile(role="staff")], None
    assert service.on_sign_in(None, auth_user()) is None


@pytest.mark.parametrize(("record", "user"), [
    (profile(pending_role="admin"), auth_user(email_verified=False)),  # not verified yet
    (profile(pending_role="admin", status="disabled"), auth_user()),  # Auth re-enabled, the profile not: no grant
    (profile(role="admin"), auth_user()),  # nothing pending
])
def test_no_grant_no_claim(monkeypatch, world, record, user):
    world.reads, world.granted = [record], "admin"
    monkeypatch.setattr(service, "auth_changes", lambda *a, **k: {})
    assert service.on_sign_in(None, user) is None
    assert world.grants == []


def test_a_role_typed_by_hand_on_either_side_is_a_mismatch():
    from flowsuite.identity.service import role_mismatch

    assert role_mismatch({"role": "admin", "status": "active"}, {"role": "member"}) == ("admin", "member")
    assert role_mismatch({"role": "member", "status": "active"}, {"role": "admin"}) == ("member", "admin")
    assert role_mismatch({"role": "staff", "status": "disabled"}, {"role": "staff", "other": 1}) is None
    # no claim, or no role, is a member's; an unknown value is no role at all
    assert role_mismatch({"status": "active"}, None) is None
    assert role_mismatch({"role": "member"}, {}) is None
    assert role_mismatch({"role": "root"}, {"role": "member"}) is None
    assert role_mismatch({"role": "admin", "status": "deleting"}, {"role": "member"}) is None
