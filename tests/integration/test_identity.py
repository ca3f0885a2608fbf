"""Identity on the real Auth, Functions and Firestore emulators."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from testkit import harness
from testkit.harness import AppClient, AuthError, CallableError, Denied, call, eventually


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


# ---- roles need a verified email (issue 16): ADMIN_EMAILS=admin@flowsuite.test and
# STAFF_EMAILS=staff@flowsuite.test in functions/.env.local ----------------------------

def role_changes(db, uid: str) -> list[tuple[str, str]]:
    return [(e["data"]["new_role"], e["data"]["changed_by"]) for e in
            (s.to_dict() for s in db.collection("topics/identity.role_changed/events").stream())
            if e["data"]["uid"] == uid]


def test_an_admin_email_is_a_member_until_it_is_verified(db):
    user = harness.sign_up("admin@flowsuite.test")
    assert user.claims["role"] == "member"
    profile = harness.doc(db, f"users/{user.uid}")
    assert (profile["role"], profile["pending_role"]) == ("member", "admin")
    with pytest.raises(CallableError) as err:
        call("ops_run_sweep", {}, user=user)
    assert err.value.code == "permission-denied"
    assert harness.sign_in(user.email, user.password).claims["role"] == "member"  # still unverified

    harness.verify_email(user.uid)
    verified = harness.sign_in(user.email, user.password)
    assert verified.claims["role"] == "admin"
    profile = harness.doc(db, f"users/{user.uid}")
    assert profile["role"] == "admin" and "pending_role" not in profile
    assert role_changes(db, user.uid) == [("admin", "email_verified")]
    assert set(call("ops_run_sweep", {}, user=verified)) >= {"retried", "stalled", "lost"}
    harness.sign_in(user.email, user.password)  # granted once: no second event
    assert role_changes(db, user.uid) == [("admin", "email_verified")]


def test_a_verified_admin_email_signs_up_as_admin(db):
    user = harness.sign_in_with_google("admin@flowsuite.test", verified=True)
    assert user.claims["role"] == "admin" and user.claims["email_verified"] is True
    profile = harness.doc(db, f"users/{user.uid}")
    assert profile["role"] == "admin" and "pending_role" not in profile


def test_an_unverified_identity_provider_email_gets_no_role(db):
    user = harness.sign_in_with_google("staff@flowsuite.test", verified=False)
    assert user.claims["role"] == "member"
    assert harness.doc(db, f"users/{user.uid}")["pending_role"] == "staff"


@pytest.mark.parametrize(("email", "verified", "role", "pending"), [
    ("admin@flowsuite.test", False, "member", "admin"),
    ("admin@flowsuite.test", True, "admin", None),
    ("staff@flowsuite.test", False, "member", "staff"),
])
def test_the_fallback_path_grants_a_role_only_to_a_verified_email(db, email, verified, role, pending):
    user = harness.create_account_without_blocking_functions(email, verified=verified)
    AppClient(user).create("users", user.uid, {"uid": user.uid, "email": email, "display_name": "",
                                               "photo_url": "", "phone_number": "", "created_time": dt.datetime.now(dt.UTC)})
    done = eventually(lambda: (d := harness.doc(db, f"users/{user.uid}")) and "role" in d and d, what="completed profile")
    assert (done["role"], done.get("pending_role"), done["profile_source"]) == (role, pending, "client")
    fresh = eventually(lambda: (u := harness.sign_in(email, "secret-password")).claims.get("role") and u, what="claim")
    assert fresh.claims["role"] == role


def test_an_admins_choice_wins_over_a_pending_role(db, admin):
    user = harness.sign_up("staff@flowsuite.test")
    assert harness.doc(db, f"users/{user.uid}")["pending_role"] == "staff"
    assert call("identity_set_role", {"uid": user.uid, "role": "member"}, user=admin)["changed"] is False
    assert "pending_role" not in harness.doc(db, f"users/{user.uid}")
    harness.verify_email(user.uid)
    assert harness.sign_in(user.email, user.password).claims["role"] == "member"
    assert role_changes(db, user.uid) == []


def test_grant_admin_makes_the_first_admin_of_an_existing_account(db):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    user = harness.sign_up(f"first-admin-{uuid.uuid4().hex[:6]}@example.com")
    assert user.claims["role"] == "member"

    def grant(email: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "devtools.grant_admin", email], cwd=root, env=dict(os.environ),
                              capture_output=True, text=True, timeout=120)

    done = grant(user.email)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{user.email} ({user.uid}) is now admin" in done.stdout
    assert harness.doc(db, f"users/{user.uid}")["role"] == "admin"
    assert role_changes(db, user.uid) == [("admin", "devtools.grant_admin")]
    admin = harness.sign_in(user.email, user.password)
    assert admin.claims["role"] == "admin"
    assert set(call("ops_run_sweep", {}, user=admin)) >= {"retried", "stalled", "lost"}
    assert "is already admin" in grant(user.email).stdout

    missing = grant("nobody-here@example.com")
    assert missing.returncode == 1 and "no account" in missing.stderr


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


def test_a_sign_in_never_grants_a_role_the_account_was_not_given(db, admin, member):
    """The race of a sign-in with a demotion, made deterministic: a sign-in that read the profile
    before identity_set_role demoted it sees a role the account's claim no longer carries. The
    sign-in must leave the claim as it is (Firebase saves a blocking function's claims after it
    returns, so a stale role would be saved back, in a token dated after the revocation)."""
    db.document(f"users/{member.uid}").update({"role": "admin"})  # what the stale read saw
    again = harness.sign_in(member.email, member.password)
    assert again.claims["role"] == "member"
    with pytest.raises(CallableError) as err:
        call("ops_run_sweep", {}, user=again)
    assert err.value.code == "permission-denied"
    # the demotion itself: the claim set_role wrote survives the next sign-ins
    second = harness.user_with_role("admin")
    call("identity_set_role", {"uid": second.uid, "role": "member"}, user=admin)
    for _ in range(2):
        assert harness.sign_in(second.email, second.password).claims["role"] == "member"
    assert harness.doc(db, f"users/{second.uid}")["role"] == "member"


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
    from flowsuite.core.erasure import ERASERS

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
    from testkit.payments import confirm
    from testkit.shop import place, product

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

    left: list[str] = []

    def erased() -> bool:
        left[:] = [path for path, data in every_document(db)
                   if user.uid in path or user.uid in repr(data) or user.email in repr(data)]
        return not left

    # ops redacts events last, retrying with doubling backoff (1 s base on the emulator) until
    # every eraser is done: erasers slowed past ~31 s by a loaded machine move it to ~63 s.
    deadline = time.monotonic() + 150
    while not erased() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"documents still naming the user 150 s after the deletion: {left}"


# ---- revoked means revoked (issue 16) ---------------------------------------------------

def refused_as(err: CallableError, reason: str) -> bool:
    return err.code == "unauthenticated" and err.http_status == 401 and err.details.get("reason") == reason


def test_a_deleted_accounts_token_changes_nothing(member, db):
    from testkit.shop import place, product, stock

    item = product(db, stock=5)
    call("identity_delete_account", {}, user=member)
    for attempt in (lambda: place(member, [(item, 1)]),
                    lambda: call("addFcmToken", {"userDocPath": f"users/{member.uid}", "fcmToken": "t",
                                                 "deviceType": "iOS"}, user=member),
                    lambda: call("identity_delete_account", {}, user=member)):
        with pytest.raises(CallableError) as err:
            attempt()
        assert refused_as(err.value, "user-not-found"), err.value
    assert stock(db, item) == 5 and list(db.collection("orders").stream()) == []
    assert list(db.collection(f"users/{member.uid}/fcm_tokens").stream()) == []


def test_a_disabled_accounts_token_is_refused_and_stays_refused_once_enabled(admin, member, db):
    from testkit.shop import place, product

    item = product(db)
    time.sleep(1.1)  # Auth stamps revocations to the second: the token must be older
    call("identity_disable_user", {"uid": member.uid, "disabled": True}, user=admin)
    with pytest.raises(CallableError) as err:
        place(member, [(item, 1)])
    assert refused_as(err.value, "user-disabled")
    call("identity_disable_user", {"uid": member.uid, "disabled": False}, user=admin)
    with pytest.raises(CallableError) as err:
        place(member, [(item, 1)])
    assert refused_as(err.value, "id-token-revoked")
    assert list(db.collection("orders").stream()) == []
    assert place(harness.sign_in(member.email, member.password), [(item, 1)])["status"] == "pending_payment"


def test_a_token_issued_before_a_role_change_is_refused(admin, staff, db):
    time.sleep(1.1)
    call("identity_set_role", {"uid": staff.uid, "role": "member"}, user=admin)
    product = {"name": "Free", "price": 0, "currency": "usd", "stock": 1, "idempotency_key": uuid.uuid4().hex}
    with pytest.raises(CallableError) as err:
        call("orders_upsert_product", product, user=staff)  # the old token still says staff
    assert refused_as(err.value, "id-token-revoked")
    assert list(db.collection("products").stream()) == []
    demoted = harness.sign_in(staff.email, staff.password)
    assert demoted.claims["role"] == "member"
    with pytest.raises(CallableError) as err:
        call("orders_upsert_product", product, user=demoted)
    assert err.value.code == "permission-denied"


def test_sign_out_everywhere_refuses_every_earlier_token(member, db):
    from testkit.shop import place, product

    item = product(db)
    other_device = harness.sign_in(member.email, member.password)
    time.sleep(1.1)
    assert call("identity_sign_out_everywhere", {}, user=member) == {"uid": member.uid, "revoked": True}
    for token in (member, other_device):
        with pytest.raises(CallableError) as err:
            place(token, [(item, 1)])
        assert refused_as(err.value, "id-token-revoked")
    assert place(harness.sign_in(member.email, member.password), [(item, 1)])["status"] == "pending_payment"


def test_only_an_admin_signs_someone_else_out(member, admin):
    other = harness.sign_up()
    with pytest.raises(CallableError) as err:
        call("identity_sign_out_everywhere", {"uid": other.uid}, user=member)
    assert err.value.code == "permission-denied"
    time.sleep(1.1)
    call("identity_sign_out_everywhere", {"uid": other.uid}, user=admin)
    with pytest.raises(CallableError) as err:
        call("identity_sign_out_everywhere", {}, user=other)
    assert refused_as(err.value, "id-token-revoked")


def test_only_read_only_callables_that_need_no_role_skip_the_token_look_up(admin):
    time.sleep(1.1)
    call("identity_sign_out_everywhere", {}, user=admin)
    assert call("ops_ping", {}, user=admin)["ok"] is True
    for name, data in (("ops_run_sweep", {}), ("ops_list_dead_letters", {"limit": 1})):
        with pytest.raises(CallableError) as err:
            call(name, data, user=admin)
        assert refused_as(err.value, "id-token-revoked"), (name, err.value)


def test_a_demoted_admins_unexpired_token_reads_nothing_through_the_admin_callables(admin):
    """The ID token keeps the admin claim for up to an hour after identity_set_role demotes its
    holder: the read-only admin callables refuse it as the state-changing ones do."""
    demoted = harness.user_with_role("admin")  # a second admin: the last one cannot be demoted
    assert isinstance(call("ops_list_dead_letters", {"limit": 1}, user=demoted)["dead_letters"], list)
    assert call("ops_get_metrics", {}, user=demoted)["window"] == "hour"
    time.sleep(1.1)  # Auth stamps revocations to the second: the token must be older
    assert call("identity_set_role", {"uid": demoted.uid, "role": "member"}, user=admin)["changed"] is True
    assert demoted.claims["role"] == "admin" and harness.claims_of(demoted.uid)["role"] == "member"
    for name, data in (("ops_list_dead_letters", {"limit": 1}), ("ops_get_metrics", {}),
                       ("ops_run_sweep", {})):  # the state-changing one, for the same code
        with pytest.raises(CallableError) as err:
            call(name, data, user=demoted)
        assert refused_as(err.value, "id-token-revoked"), (name, err.value)
    fresh = harness.sign_in(demoted.email, demoted.password)
    with pytest.raises(CallableError) as err:
        call("ops_list_dead_letters", {"limit": 1}, user=fresh)
    assert err.value.code == "permission-denied"


def test_deleting_your_account_needs_a_recent_sign_in(member):
    claims = member.claims
    stale = harness.token_with(member, auth_time=claims["auth_time"] - 3600)  # signed in an hour ago, refreshed since
    with pytest.raises(CallableError) as err:
        call("identity_delete_account", {}, user=stale)
    assert err.value.code == "failed-precondition"
    assert err.value.details["reason"] == "requires-recent-login" and err.value.details["max_age_seconds"] == 300
    assert harness.account_exists(member.uid)
    assert call("identity_delete_account", {}, user=member) == {"uid": member.uid, "deleted": True}
    assert not harness.account_exists(member.uid)


def test_an_admin_deletes_another_account_without_a_recent_sign_in(admin):
    other = harness.sign_up()
    stale = harness.token_with(admin, auth_time=admin.claims["auth_time"] - 3600)
    assert call("identity_delete_account", {"uid": other.uid}, user=stale)["deleted"] is True
    assert not harness.account_exists(other.uid)


def test_a_profile_recreated_by_a_deleted_accounts_token_is_erased_by_reconciliation(admin, member, db):
    from flowsuite.core.ids import person_key

    call("identity_delete_account", {}, user=member)
    first = f"deliveries/{person_key(member.uid)}:ops_on_user_deleted"  # ops erases last
    eventually(lambda: (harness.doc(db, first) or {}).get("status") == "processed", timeout=60, what="first erasure")
    assert harness.doc(db, f"users/{member.uid}") is None
    # Firestore's rules cannot tell a deleted account's unexpired token from a live one.
    AppClient(member).create("users", member.uid, {
        "uid": member.uid, "email": member.email, "display_name": "Back", "photo_url": "", "phone_number": "",
        "created_time": dt.datetime.now(dt.UTC)})
    eventually(lambda: harness.doc(db, f"public_profiles/{member.uid}"), what="the re-created profile synced")
    answer = call("identity_run_reconciliation", {}, user=admin)
    assert answer["erased"] == [member.uid] and answer["needs_confirmation"] is False
    eventually(lambda: not holds_uid(db, member.uid), what="the re-created profile erased again")
    assert harness.doc(db, f"public_profiles/{member.uid}") is None
    assert len(list(db.collection("topics/identity.user_deleted/events").stream())) == 2
    assert call("identity_run_reconciliation", {}, user=admin)["erased"] == []


# ---- orphans: per-user documents the app writes itself (push tokens, notification settings)
# under a uid with neither a profile nor an Auth account. Queries never return a missing parent
# document, so only the orphan scan of the collection groups finds them. ----------------------

def test_reconciliation_erases_push_tokens_and_settings_under_a_uid_with_no_profile_nor_account(admin, db):
    orphan, settings_only = f"orphan-{uuid.uuid4().hex[:8]}", f"orphan-{uuid.uuid4().hex[:8]}"
    now = dt.datetime.now(dt.UTC)
    db.document(f"users/{orphan}/fcm_tokens/t-orphan").set({"fcm_token": "tok-orphan", "device_type": "iOS",
                                                            "created_at": now})
    db.document(f"users/{orphan}/settings/notifications").set({"welcome": {"push": False}})
    db.document(f"users/{settings_only}/settings/notifications").set({"welcome": {"email": False}})
    call("addFcmToken", {"userDocPath": f"users/{admin.uid}", "fcmToken": "tok-live", "deviceType": "iOS"}, user=admin)
    # an Auth account whose profile the app has not created yet: not an orphan
    fresh = harness.create_account_without_blocking_functions(f"fresh-{uuid.uuid4().hex[:6]}@example.com")
    db.document(f"users/{fresh.uid}/fcm_tokens/t-fresh").set({"fcm_token": "tok-fresh", "device_type": "Android",
                                                              "created_at": now})
    for uid in (orphan, settings_only):
        assert harness.doc(db, f"users/{uid}") is None and not harness.account_exists(uid)
    assert harness.doc(db, f"users/{fresh.uid}") is None

    answer = call("identity_run_reconciliation", {}, user=admin)
    assert sorted(answer["orphans_erased"]) == sorted([orphan, settings_only])
    assert (answer["orphans_erased_count"], answer["orphans_checked"], answer["orphans_pass_complete"]) == (2, 5, True)
    assert answer["erased"] == [] and answer["failed"] == 0
    erased_paths = (f"users/{orphan}/fcm_tokens", f"users/{orphan}/settings", f"users/{settings_only}/settings")
    eventually(lambda: not any(list(db.collection(path).stream()) for path in erased_paths), timeout=60,
               what="the orphaned push token and settings erased")
    assert [s.get("fcm_token") for s in db.collection(f"users/{admin.uid}/fcm_tokens").stream()] == ["tok-live"]
    assert [s.id for s in db.collection(f"users/{fresh.uid}/fcm_tokens").stream()] == ["t-fresh"]
    deleted = [s.to_dict() for s in db.collection("topics/identity.user_deleted/events").stream()]
    assert len(deleted) == 2 and {e["data"]["reason"] for e in deleted} == {"reconciliation"}
    again = call("identity_run_reconciliation", {}, user=admin)
    assert (again["orphans_erased"], again["orphans_checked"]) == ([], 2)
    assert harness.doc(db, "identity_state/reconciliation")["orphan_cursors"] == {"fcm_tokens": None, "settings": None}


def test_a_push_token_written_after_an_accounts_erasure_is_erased_by_reconciliation(admin, member, db):
    """The deleted account's ID token stays valid for up to an hour and the rules cannot tell it
    from a live one: the token it writes after the erasure (written here with the admin client,
    as that token could) is found by the orphan scan and erased under an event of its own."""
    from flowsuite.core.ids import person_key

    call("identity_delete_account", {}, user=member)
    first = f"deliveries/{person_key(member.uid)}:ops_on_user_deleted"  # ops erases last
    eventually(lambda: (harness.doc(db, first) or {}).get("status") == "processed", timeout=60, what="first erasure")
    assert harness.doc(db, f"users/{member.uid}") is None
    db.document(f"users/{member.uid}/fcm_tokens/late").set({"fcm_token": "tok-late", "device_type": "Android",
                                                            "created_at": dt.datetime.now(dt.UTC)})

    answer = call("identity_run_reconciliation", {}, user=admin)
    assert answer["orphans_erased"] == [member.uid] and answer["erased"] == [], answer
    eventually(lambda: not list(db.collection(f"users/{member.uid}/fcm_tokens").stream()), timeout=60,
               what="the late push token erased")
    assert len(list(db.collection("topics/identity.user_deleted/events").stream())) == 2
    assert call("identity_run_reconciliation", {}, user=admin)["orphans_erased"] == []


def test_reconciliation_reports_a_role_typed_by_hand_and_changes_neither_side(admin, member, db):
    """A role typed in the console on users/{uid} (or claims set with the Admin SDK) parts the
    profile from the claim the rules trust: reconciliation names the account and both roles,
    and copies neither way (either copy could undo a demotion); identity_set_role sets both."""
    db.document(f"users/{member.uid}").update({"role": "admin"})
    answer = call("identity_run_reconciliation", {}, user=admin)
    assert answer["role_mismatches"] == [{"uid": member.uid, "profile_role": "admin", "claim_role": "member"}]
    assert answer["role_mismatch_count"] == 1 and answer["erased"] == []
    assert harness.doc(db, f"users/{member.uid}")["role"] == "admin"
    assert harness.claims_of(member.uid).get("role") == "member"
    call("identity_set_role", {"uid": member.uid, "role": "member"}, user=admin)
    assert call("identity_run_reconciliation", {}, user=admin)["role_mismatches"] == []


# ---- reconciliation is safe (issue 16): IDENTITY_RECONCILE_MAX_ERASE_PERCENT=10,
# IDENTITY_RECONCILE_ALWAYS_ERASE=5 (the defaults) --------------------------------------

def test_reconciliation_refuses_to_erase_most_profiles_until_an_admin_confirms(admin, db):
    gone = [harness.sign_up() for _ in range(7)]
    for user in gone:
        harness.delete_account_outside_the_suite(user.uid)
    uids = sorted(u.uid for u in gone)
    refused = call("identity_run_reconciliation", {}, user=admin)
    assert refused["needs_confirmation"] is True and refused["erased"] == []
    assert sorted(refused["skipped"]) == uids and refused["skipped_count"] == 7
    assert (refused["checked"], refused["limit"]) == (8, 5)
    assert all(harness.doc(db, f"users/{uid}")["status"] == "active" for uid in uids)
    assert list(db.collection("topics/identity.user_deleted/events").stream()) == []

    confirmed = call("identity_run_reconciliation", {"confirm": True}, user=admin)
    assert sorted(confirmed["erased"]) == uids and confirmed["needs_confirmation"] is False
    eventually(lambda: all(harness.doc(db, f"users/{uid}") is None for uid in uids), what="confirmed erasure")
    assert harness.doc(db, f"users/{admin.uid}")["role"] == "admin"


def test_a_late_profile_trigger_never_brings_back_an_erased_public_profile(member, db):
    """identity_on_profile_written for an earlier name edit, retried or delivered after the
    account was erased (run here as the trigger runs it, with that edit's snapshots): the
    public profile, which every signed-in user reads, stays gone."""
    from flowsuite.core.ids import person_key
    from flowsuite.identity import service

    edited = harness.doc(db, f"users/{member.uid}")
    before, after = {**edited, "display_name": ""}, {**edited, "display_name": "Old name"}
    call("identity_delete_account", {}, user=member)
    erased = f"deliveries/{person_key(member.uid)}:ops_on_user_deleted"  # ops erases last
    eventually(lambda: (harness.doc(db, erased) or {}).get("status") == "processed", timeout=60, what="erasure")
    assert harness.doc(db, f"public_profiles/{member.uid}") is None
    assert service.sync_public_profile(db, member.uid, before, after) == "unchanged"
    assert service.sync_public_profile(db, member.uid, None, after) == "unchanged"  # a late create, too
    assert harness.doc(db, f"public_profiles/{member.uid}") is None
    assert harness.doc(db, f"users/{member.uid}") is None


def test_a_late_name_edit_never_overwrites_a_newer_one(member, db):
    from flowsuite.identity import service

    AppClient(member).update(f"users/{member.uid}", {"display_name": "Second"})
    eventually(lambda: (harness.doc(db, f"public_profiles/{member.uid}") or {}).get("display_name") == "Second",
               what="public profile")
    profile = harness.doc(db, f"users/{member.uid}")
    # the first edit's event ("" -> "First"), delivered after the second one
    assert service.sync_public_profile(db, member.uid, {**profile, "display_name": ""},
                                       {**profile, "display_name": "First"}) == "unchanged"
    assert harness.doc(db, f"public_profiles/{member.uid}")["display_name"] == "Second"
    # a public profile that fell behind (a trigger lost) is brought to the profile as it is now
    db.document(f"public_profiles/{member.uid}").update({"display_name": "Stale"})
    assert service.sync_public_profile(db, member.uid, {**profile, "display_name": ""},
                                       {**profile, "display_name": "First"}) == "written"
    assert harness.doc(db, f"public_profiles/{member.uid}")["display_name"] == "Second"


def test_a_malformed_profile_field_is_never_copied_to_the_public_profile(db):
    user = harness.sign_up(display_name="Ada")
    eventually(lambda: (harness.doc(db, f"public_profiles/{user.uid}") or {}).get("display_name") == "Ada",
               what="public profile")
    # written past the rules (which refuse it from the app): the trigger must neither crash nor copy it
    db.document(f"users/{user.uid}").update({"display_name": {"html": "<b>x</b>"}, "photo_url": 5})
    eventually(lambda: harness.doc(db, f"public_profiles/{user.uid}")["display_name"] == "", what="left out")
    assert harness.doc(db, f"public_profiles/{user.uid}")["photo_url"] == ""
