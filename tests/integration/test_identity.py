"""Identity on the real Auth, Functions and Firestore emulators."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests import harness
from tests.harness import AppClient, AuthError, CallableError, Denied, call, eventually


def user_created_events(db, uid: str) -> list[dict]:
    return [s.to_dict() for s in db.collection("topics/identity.user_created/events").stream() if s.to_dict()["data"]["uid"] == uid]


def test_sign_up_sets_the_role_claim_and_a_flutterflow_profile(db):
    user = harness.sign_up("New.Person@Example.com", display_name="New Person")
    assert user.claims["role"] == "member"
    profile = harness.doc(db, f"users/{user.uid}")
    assert profile["email"] == "new.person@example.com"
    assert profile["display_name"] == "New Person" and profile["uid"] == user.uid
    assert isinstance(profile["created_time"], dt.datetime)
    assert {"photo_url", "phone_number"} <= set(profile)
    assert (profile["role"], profile["status"], profile["profile_source"]) == ("member", "active", "blocking")
    events = user_created_events(db, user.uid)
    assert len(events) == 1 and events[0]["data"]["via"] == "blocking"
    public = eventually(lambda: harness.doc(db, f"public_profiles/{user.uid}"), what="public profile")
    assert public == {**public, "display_name": "New Person", "uid": user.uid} and "email" not in public


def test_a_blocked_email_domain_is_refused(db):
    with pytest.raises(AuthError) as err:
        harness.sign_up("someone@blocked.test")
    assert "not allowed" in err.value.message
    assert list(db.collection("users").stream()) == []


def test_an_admin_email_signs_up_as_admin():
    assert harness.sign_up("admin@flowsuite.test").claims["role"] == "admin"


def test_a_disabled_user_cannot_sign_in(admin, member, db):
    call("identity_disable_user", {"uid": member.uid, "disabled": True}, user=admin)
    assert harness.doc(db, f"users/{member.uid}")["status"] == "disabled"
    with pytest.raises(AuthError) as err:
        harness.sign_in(member.email, member.password)
    assert "DISABLED" in err.value.message.upper()
    call("identity_disable_user", {"uid": member.uid, "disabled": False}, user=admin)
    assert harness.sign_in(member.email, member.password).uid == member.uid


def test_a_client_created_profile_is_accepted_completed_and_published_once(db):
    user = harness.create_account_without_blocking_functions("ff.app@example.com")
    assert harness.doc(db, f"users/{user.uid}") is None
    app = AppClient(user)
    app.create("users", user.uid, {
        "uid": user.uid, "email": "ff.app@example.com", "display_name": "FF", "photo_url": "",
        "phone_number": "", "created_time": dt.datetime.now(dt.UTC),
    })
    done = eventually(lambda: (d := harness.doc(db, f"users/{user.uid}")) and "role" in d and d, what="completed profile")
    assert (done["role"], done["profile_source"], done["status"]) == ("member", "client", "active")
    events = user_created_events(db, user.uid)
    assert len(events) == 1 and events[0]["data"]["via"] == "client"
    fresh = eventually(lambda: (u := harness.sign_in(user.email, user.password)).claims.get("role") and u, what="claim")
    assert fresh.claims["role"] == "member"


def test_a_client_created_profile_with_a_role_is_refused(db):
    user = harness.create_account_without_blocking_functions("sneaky@example.com")
    with pytest.raises(Denied):
        AppClient(user).create("users", user.uid, {"uid": user.uid, "email": "sneaky@example.com", "role": "admin"})
    with pytest.raises(Denied):
        AppClient(user).create("users", "someone-else", {"uid": "someone-else"})
    assert harness.doc(db, f"users/{user.uid}") is None


def test_a_role_change_takes_effect_in_a_fresh_token(admin, member, db):
    answer = call("identity_set_role", {"uid": member.uid, "role": "staff"}, user=admin)
    assert answer == {"uid": member.uid, "role": "staff", "changed": True}
    assert harness.sign_in(member.email, member.password).claims["role"] == "staff"
    assert harness.doc(db, f"users/{member.uid}")["role"] == "staff"
    changed = [s.to_dict() for s in db.collection("topics/identity.role_changed/events").stream()]
    assert [c["data"]["new_role"] for c in changed] == ["staff"]


def test_a_member_cannot_change_roles(member):
    with pytest.raises(CallableError) as err:
        call("identity_set_role", {"uid": member.uid, "role": "admin"}, user=member)
    assert err.value.code == "permission-denied"


def test_set_role_refuses_bad_input_and_unknown_users(admin):
    with pytest.raises(CallableError) as err:
        call("identity_set_role", {"uid": "x", "role": "owner"}, user=admin)
    assert err.value.code == "invalid-argument" and err.value.fields == ["role"]
    with pytest.raises(CallableError) as err:
        call("identity_set_role", {"uid": "nobody", "role": "staff"}, user=admin)
    assert err.value.code == "not-found"


def test_the_last_admin_cannot_be_demoted(admin, db):
    with pytest.raises(CallableError) as err:
        call("identity_set_role", {"uid": admin.uid, "role": "member"}, user=admin)
    assert err.value.code == "failed-precondition"
    assert harness.doc(db, f"users/{admin.uid}")["role"] == "admin"
    second = harness.user_with_role("admin")
    call("identity_set_role", {"uid": admin.uid, "role": "member"}, user=second)
    assert harness.doc(db, f"users/{admin.uid}")["role"] == "member"


def registered_collections() -> dict[str, tuple[str, ...]]:
    import flowsuite.identity.functions  # noqa: F401 - registers erasers
    import flowsuite.ops.functions  # noqa: F401
    from flowsuite.identity.erasure import ERASERS

    return {domain: e.collections for domain, e in ERASERS.items()}


def holds_uid(db, uid: str) -> list[str]:
    """Every document of a registered collection that holds the uid (as id or field value)."""
    found = []
    for collections in registered_collections().values():
        for name in collections:
            for snap in db.collection(name.format(uid=uid)).stream():
                if snap.id == uid or uid in repr(snap.to_dict()):
                    found.append(snap.reference.path)
    for sub in db.document(f"users/{uid}").collections():
        found += [s.reference.path for s in sub.stream()]
    return found


def test_deleting_your_account_erases_it_everywhere(member, db):
    assert holds_uid(db, member.uid)  # the profile, public profile
    assert call("identity_delete_account", {}, user=member) == {"uid": member.uid, "deleted": True}
    assert not harness.account_exists(member.uid)
    eventually(lambda: not holds_uid(db, member.uid), what="erasure in every registered collection")
    from flowsuite.core.ids import person_key

    deleted = harness.doc(db, f"topics/identity.user_deleted/events/{person_key(member.uid)}")
    assert deleted["data"]["reason"] == "self"  # the uid itself is redacted once every domain erased


def test_only_an_admin_deletes_another_account(member, admin):
    other = harness.sign_up()
    with pytest.raises(CallableError) as err:
        call("identity_delete_account", {"uid": other.uid}, user=member)
    assert err.value.code == "permission-denied"
    assert harness.account_exists(other.uid)
    call("identity_delete_account", {"uid": other.uid}, user=admin)
    assert not harness.account_exists(other.uid)


def test_reconciliation_erases_an_account_deleted_outside_the_suite(admin, member, db):
    harness.delete_account_outside_the_suite(member.uid)
    answer = call("identity_run_reconciliation", {}, user=admin)
    assert answer["erased"] == [member.uid] and answer["checked"] >= 2
    eventually(lambda: not holds_uid(db, member.uid), what="erasure after reconciliation")
    assert call("identity_run_reconciliation", {}, user=admin)["erased"] == []


def test_every_domain_joins_the_erasure_registry():
    import importlib
    from pathlib import Path

    import flowsuite
    from flowsuite.registry import DOMAINS

    root = Path(flowsuite.__file__).parent
    present = {d for d in DOMAINS if (root / d / "functions.py").is_file()}
    for d in present:
        importlib.import_module(f"flowsuite.{d}.functions")
    missing = present - set(registered_collections())
    assert not missing, f"domains without an eraser: {missing}"


# The rules for users and public_profiles are in test_rules_matrix.py (every actor x operation).


def every_document(db):
    """Every document in the database, subcollections included (missing parents too)."""
    stack = [c for c in db.collections() if not c.id.startswith("_")]  # _push_outbox, _faults: emulator only
    while stack:
        collection = stack.pop()
        for ref in collection.list_documents():
            stack.extend(ref.collections())
            snap = ref.get()
            yield ref.path, (snap.to_dict() if snap.exists else None)


def test_after_a_deletion_no_document_anywhere_holds_the_uid_or_the_email(db):
    from tests.integration.payments_helpers import confirm
    from tests.integration.shop import place, product

    user = harness.sign_up(f"erase-me-{uuid.uuid4().hex[:6]}@example.com", display_name="Erase Me")
    call("addFcmToken", {"userDocPath": f"users/{user.uid}", "fcmToken": "tok-erase", "deviceType": "iOS"}, user=user)
    AppClient(user).set(f"users/{user.uid}/settings/notifications", {"welcome": {"push": False}})
    out = place(user, [(product(db), 1)])
    intent = call("payments_create_intent", {"order_id": out["order_id"], "idempotency_key": uuid.uuid4().hex}, user=user)
    confirm(harness.doc(db, f"payments/{intent['payment_id']}")["provider_ref"])
    eventually(lambda: [n for n in db.collection(f"users/{user.uid}/notifications").stream() if n.get("type") == "order_paid"],
               what="a paid order with its receipt")
    assert any(user.uid in path or user.uid in repr(data) for path, data in every_document(db))

    call("identity_delete_account", {}, user=user)

    def holding():
        return [path for path, data in every_document(db)
                if user.uid in path or user.uid in repr(data) or user.email in repr(data)]

    assert eventually(lambda: not holding(), timeout=60, what="no trace of the user") is True, holding()
