"""Identity service code: profiles, roles, disabling, deletion, reconciliation.

Plain functions; clients are passed in (``db`` is a Firestore client, ``auth`` is
``firebase_admin.auth``), so tests run them against the emulators directly.
"""

from __future__ import annotations

from typing import Any

from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import events, ids, log
from flowsuite.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from flowsuite.identity import config
from flowsuite.identity.events import RoleChanged, UserCreated, UserDeleted

USERS = "users"
PUBLIC_PROFILES = "public_profiles"
FLUTTERFLOW_FIELDS = ("uid", "email", "display_name", "photo_url", "phone_number", "created_time")
PUBLIC_FIELDS = ("display_name", "photo_url")


def normalise_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def email_domain(email: str | None) -> str | None:
    return email.rsplit("@", 1)[1] if email and "@" in email else None


def check_sign_up_allowed(email: str | None) -> None:
    domain = email_domain(normalise_email(email))
    if domain and domain in config.csv(config.BLOCKED_EMAIL_DOMAINS):
        raise PermissionDeniedError(f"Sign-ups from {domain} are not allowed.")


def initial_role(email: str | None) -> str:
    email = normalise_email(email)
    if email and email in config.csv(config.ADMIN_EMAILS):
        return "admin"
    if email and email in config.csv(config.STAFF_EMAILS):
        return "staff"
    return "member"


def profile_for(user: Any, role: str, via: str) -> dict[str, Any]:
    """FlutterFlow's users fields plus the server-owned ones."""
    return {
        "uid": user.uid,
        "email": normalise_email(user.email) or "",
        "display_name": user.display_name or "",
        "photo_url": user.photo_url or "",
        "phone_number": user.phone_number or "",
        "created_time": gcf.SERVER_TIMESTAMP,
        "role": role,
        "status": "active",
        "profile_source": via,
    }


def create_profile_on_sign_up(db, user: Any) -> str:
    """Blocking sign-up: the profile and ``identity.user_created`` in one batch. Returns the role."""
    check_sign_up_allowed(user.email)
    role = initial_role(user.email)
    batch = db.batch()
    batch.set(db.collection(USERS).document(user.uid), profile_for(user, role, "blocking"))
    events.publish(
        batch,
        UserCreated(uid=user.uid, email=normalise_email(user.email), display_name=user.display_name, via="blocking"),
        subject=f"{USERS}/{user.uid}",
        event_id=ids.person_key(user.uid),  # one user_created per uid, whichever path created the profile
        db=db,
    )
    batch.commit()
    return role


def role_on_record(db, uid: str) -> tuple[str | None, str | None]:
    """(role, status) from the server-side record, or (None, None) without a profile."""
    snap = db.collection(USERS).document(uid).get()
    if not snap.exists:
        return None, None
    data = snap.to_dict()
    return data.get("role"), data.get("status")


def complete_client_profile(db, auth, uid: str) -> bool:
    """A profile the app created itself: add the server fields, publish user_created once."""
    ref = db.collection(USERS).document(uid)

    event_ref = db.collection(UserCreated.event_type.collection).document(ids.person_key(uid))

    @gcf.transactional
    def complete(txn) -> str | None:
        snap = ref.get(transaction=txn)
        published = event_ref.get(transaction=txn).exists
        if not snap.exists or "profile_source" in snap.to_dict() or published:
            return None  # gone, already complete, or the blocking path won
        data = snap.to_dict()
        email = normalise_email(data.get("email"))
        role = initial_role(email)
        txn.update(ref, {"role": role, "status": "active", "profile_source": "client"})
        events.publish(
            txn,
            UserCreated(uid=uid, email=email, display_name=data.get("display_name"), via="client"),
            subject=f"{USERS}/{uid}",
            event_id=ids.person_key(uid),
            db=db,
        )
        return role

    role = complete(db.transaction())
    if role is None:
        return False
    try:
        auth.set_custom_user_claims(uid, {"role": role})
    except auth.UserNotFoundError:
        log.warning("profile without an Auth user; reconciliation will erase it", subject_uid=uid)
    return True


def sync_public_profile(db, uid: str, before: dict | None, after: dict | None) -> None:
    ref = db.collection(PUBLIC_PROFILES).document(uid)
    if after is None:
        ref.delete()
        return
    wanted = {k: after.get(k) or "" for k in PUBLIC_FIELDS}
    if before is not None and all((before.get(k) or "") == wanted[k] for k in PUBLIC_FIELDS):
        return
    ref.set({"uid": uid, **wanted, "updated_time": gcf.SERVER_TIMESTAMP})


def set_role(db, auth, *, uid: str, role: str, changed_by: str) -> bool:
    """Sets the role on the record (with the event), then the claim; revokes refresh tokens."""
    if role not in config.ROLES:
        raise InvalidArgumentError.for_field("role", f"must be one of {', '.join(config.ROLES)}")
    ref = db.collection(USERS).document(uid)

    @gcf.transactional
    def change(txn) -> bool:
        snap = ref.get(transaction=txn)
        if not snap.exists:
            raise NotFoundError(f"No user {uid}.", details={"uid": uid})
        old = snap.get("role") if "role" in snap.to_dict() else "member"
        if old == role:
            return False
        if old == "admin":
            admins = list(
                db.collection(USERS).where(filter=FieldFilter("role", "==", "admin")).limit(2).stream(transaction=txn)
            )
            if len(admins) <= 1:
                raise FailedPreconditionError("The last admin cannot be demoted.", details={"uid": uid})
        txn.update(ref, {"role": role, "updated_time": gcf.SERVER_TIMESTAMP})
        events.publish(
            txn, RoleChanged(uid=uid, old_role=old, new_role=role, changed_by=changed_by),
            subject=f"{USERS}/{uid}", db=db,
        )
        return True

    changed = change(db.transaction())
    apply_role_claim(auth, uid, role)
    return changed


def apply_role_claim(auth, uid: str, role: str) -> None:
    try:
        user = auth.get_user(uid)
    except auth.UserNotFoundError as exc:
        raise NotFoundError(f"No user {uid}.", details={"uid": uid}) from exc
    claims = dict(user.custom_claims or {})
    if claims.get("role") != role:
        auth.set_custom_user_claims(uid, {**claims, "role": role})
        auth.revoke_refresh_tokens(uid)


def disable_user(db, auth, *, uid: str, disabled: bool, by: str) -> None:
    if uid == by and disabled:
        raise FailedPreconditionError("You cannot disable your own account.")
    try:
        auth.update_user(uid, disabled=disabled)
    except auth.UserNotFoundError as exc:
        raise NotFoundError(f"No user {uid}.", details={"uid": uid}) from exc
    if disabled:
        auth.revoke_refresh_tokens(uid)
    ref = db.collection(USERS).document(uid)
    if ref.get().exists:
        ref.update({"status": "disabled" if disabled else "active", "updated_time": gcf.SERVER_TIMESTAMP})


def delete_account(db, auth, *, uid: str, reason: str) -> bool:
    """Deletes the Auth user first, then publishes ``identity.user_deleted`` once.

    If the publish fails after the Auth deletion, reconciliation finds the
    profile without an account and publishes it then.
    """
    try:
        auth.delete_user(uid)
    except auth.UserNotFoundError:
        pass
    return publish_user_deleted(db, uid=uid, reason=reason)


def publish_user_deleted(db, *, uid: str, reason: str) -> bool:
    ref = db.collection(USERS).document(uid)

    @gcf.transactional
    def publish(txn) -> bool:
        event_ref = db.collection(UserDeleted.event_type.collection).document(ids.person_key(uid))
        if event_ref.get(transaction=txn).exists:
            return False
        profile = ref.get(transaction=txn)
        events.publish(txn, UserDeleted(uid=uid, reason=reason), subject=f"{USERS}/{uid}", event_id=ids.person_key(uid), db=db)
        if profile.exists:
            txn.update(ref, {"status": "deleting", "updated_time": gcf.SERVER_TIMESTAMP})
        return True

    return publish(db.transaction())


def reconcile(db, auth, *, page_size: int = 100) -> tuple[int, list[str]]:
    """Finds profiles whose Auth account is gone and erases them like a deletion."""
    from firebase_admin.auth import UidIdentifier  # noqa: PLC0415

    checked, erased = 0, []
    last = None
    while True:
        query = db.collection(USERS).order_by("__name__").limit(page_size)
        if last is not None:
            query = query.start_after(last)
        page = list(query.stream())
        if not page:
            break
        last = page[-1]
        uids = [snap.id for snap in page]
        checked += len(uids)
        result = auth.get_users([UidIdentifier(u) for u in uids])
        missing = {ident.uid for ident in result.not_found}
        for uid in uids:
            if uid in missing and publish_user_deleted(db, uid=uid, reason="reconciliation"):
                erased.append(uid)
    log.info("reconciliation finished", checked=checked, erased=len(erased))
    return checked, erased


def erase(db, uid: str) -> None:
    """Identity's part of an erasure: the profile and the public profile."""
    db.collection(USERS).document(uid).delete()
    db.collection(PUBLIC_PROFILES).document(uid).delete()
