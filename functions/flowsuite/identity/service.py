"""Identity service code: profiles, roles, disabling, deletion, reconciliation.

Plain functions; clients are passed in (``db`` is a Firestore client, ``auth`` is
``firebase_admin.auth``), so tests run them against the emulators directly.
"""

from __future__ import annotations

from typing import Any

from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import clock, events, ids, log, settings
from flowsuite.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from flowsuite.identity import config
from flowsuite.identity.documents import IdentityStateDoc, PublicProfileDoc, UserDoc
from flowsuite.identity.events import EmailChanged, RoleChanged, UserCreated, UserDeleted

USERS = "users"
PUBLIC_PROFILES = "public_profiles"
FLUTTERFLOW_FIELDS = ("uid", "email", "display_name", "photo_url", "phone_number", "created_time")
PUBLIC_FIELDS = ("display_name", "photo_url")


def normalise_email(email: str | None) -> str | None:
    return email.strip().lower() if email else None


def check_sign_up_allowed(email: str | None, *, action: str = "Sign-ups") -> None:
    """Refuses an email in a blocked domain (BLOCKED_EMAIL_DOMAINS): at sign-up, and at every
    sign-in against the address Auth holds then (one changed or linked since sign-up)."""
    domain = settings.blocked_email_domain(email)
    if domain:
        raise PermissionDeniedError(f"{action} from {domain} are not allowed.")


def listed_role(email: str | None) -> str:
    """The role ADMIN_EMAILS / STAFF_EMAILS name for an email, verified or not. Pure."""
    email = normalise_email(email)
    if email and email in config.csv(config.ADMIN_EMAILS):
        return "admin"
    if email and email in config.csv(config.STAFF_EMAILS):
        return "staff"
    return "member"


def initial_role(email: str | None, verified: bool) -> tuple[str, str | None]:
    """(role, pending role). A listed email grants its role only once verified: anyone can
    sign up with an address they do not own. Until then the role waits as pending, and is
    granted at the first sign-in with the email verified (or by an admin). Pure."""
    listed = listed_role(email)
    if listed == "member" or verified:
        return listed, None
    return "member", listed


def profile_for(user: Any, role: str, via: str, pending_role: str | None = None) -> dict[str, Any]:
    """FlutterFlow's users fields plus the server-owned ones."""
    return UserDoc.new({
        "uid": user.uid,
        "email": normalise_email(user.email) or "",
        "display_name": user.display_name or "",
        "photo_url": user.photo_url or "",
        "phone_number": user.phone_number or "",
        "created_time": gcf.SERVER_TIMESTAMP,
        "role": role,
        "status": "active",
        "profile_source": via,
        **({"pending_role": pending_role} if pending_role else {}),
    })


def create_profile_on_sign_up(db, user: Any) -> str:
    """Blocking sign-up: the profile and ``identity.user_created`` in one batch. Returns the role."""
    check_sign_up_allowed(user.email)
    role, pending = initial_role(user.email, bool(getattr(user, "email_verified", False)))
    batch = db.batch()
    batch.set(db.collection(USERS).document(user.uid), profile_for(user, role, "blocking", pending))
    events.publish(
        batch,
        UserCreated(uid=user.uid, email=normalise_email(user.email), display_name=user.display_name, via="blocking"),
        subject=f"{USERS}/{user.uid}",
        event_id=ids.person_key(user.uid),  # one user_created per uid, whichever path created the profile
        db=db,
    )
    batch.commit()
    return role


def record_of(db, uid: str) -> dict[str, Any] | None:
    """The server-side record (the profile), or None."""
    snap = db.collection(USERS).document(uid).get()
    return snap.to_dict() if snap.exists else None


def on_sign_in(db, user: Any) -> str | None:
    """Blocking sign-in, judged by what Firebase Auth says now (the source of truth): refuses a
    disabled account, an email in a blocked domain (an address changed or linked since sign-up)
    and an account being deleted; brings the profile's email and status in step with Auth (a
    "disabled" left on the profile never locks out an account Auth re-enabled, as in the
    console); grants a role a listed email waited for once it is verified.

    Returns a role claim only for a role this sign-in granted itself, else None: the account's
    claims are then left as they are. Why: Firebase saves the custom claims a blocking function
    returns on the account after the function has returned. A role read from the profile at
    the start of a sign-in may be stale by then: an admin's ``identity_set_role`` (profile,
    then claim, then revoked tokens) can run in between, and the sign-in would save the old
    role back and get a token dated after the revocation (a demoted admin stays admin). So a
    sign-in never copies the profile's role to the claim; ``set_role`` is the role claim's
    writer (sign-up's blocking function and ``complete_client_profile`` set the first one).
    A pending grant is the one exception, decided as late as possible: the grant's
    transaction (``set_role`` clears ``pending_role``, so a demotion committed before it
    wins) and a read of the profile just before returning (a demotion committed after the
    grant wins). What is left is a demotion committed in the milliseconds between that read
    and Auth saving the answer, during a listed email's first verified sign-in."""
    if user.disabled:
        raise PermissionDeniedError("This account is disabled.")
    check_sign_up_allowed(user.email, action="Sign-ins")
    record = record_of(db, user.uid)
    if record is None:
        return None
    if record.get("status") == "deleting":
        raise PermissionDeniedError("This account is being deleted.")
    if auth_changes(record, email=user.email, disabled=False):
        changes = follow_auth(db, user.uid, email=user.email, disabled=False, via="sign_in")
        record = {**record, **changes}
    if not (record.get("pending_role") and user.email_verified and record.get("status") == "active"):
        return None
    granted = grant_pending_role(db, user.uid, email=user.email)
    if granted is None or (record_of(db, user.uid) or {}).get("role") != granted:
        return None  # nothing granted, or the role changed since: set_role wrote the claim
    return granted


# ---- the profile follows Auth ----------------------------------------------------------

MIRRORED_STATUSES = ("active", "disabled")  # "deleting" and a profile not completed yet are left alone


def auth_changes(profile: dict[str, Any], *, email: str | None, disabled: bool) -> dict[str, str]:
    """The profile fields that no longer say what Firebase Auth says: ``email`` (Auth's,
    normalised; "" when it has none) and ``status`` (active or disabled, as Auth's ``disabled``).
    Only what differs; nothing for a profile being deleted. Pure."""
    status = profile.get("status")
    if status == "deleting":
        return {}
    changes: dict[str, str] = {}
    wanted = normalise_email(email) or ""
    if (normalise_email(text_or_empty(profile.get("email"))) or "") != wanted:
        changes["email"] = wanted
    if status in MIRRORED_STATUSES and (status == "disabled") != bool(disabled):
        changes["status"] = "disabled" if disabled else "active"
    return changes


def role_mismatch(profile: dict[str, Any], claims: dict[str, Any] | None) -> tuple[str, str] | None:
    """(the profile's role, the claim's role) when they differ, else None. Pure.

    ``identity_set_role`` writes both; they part when someone edits one by hand (``role`` on
    ``users/{uid}`` in the Firestore console, or the custom claims with the Admin SDK). The
    claim is what rules and callables trust; the profile is what the app shows and what
    broadcasts check. Reconciliation reports the difference and leaves both alone: copying
    either way could undo a demotion. A missing role is a member's; a profile being deleted
    is not compared."""
    if profile.get("status") == "deleting":
        return None
    mine = profile.get("role") if profile.get("role") in config.ROLES else "member"
    theirs = (claims or {}).get("role")
    theirs = theirs if theirs in config.ROLES else "member"
    return (mine, theirs) if mine != theirs else None


def first_email_event_id(uid: str) -> str:
    """The id of the email_changed event that gives an account its first address: one per uid,
    so the sign-in, reconciliation and the sync callable never announce it twice."""
    return ids.person_key(f"{uid}\nfirst-email")


def follow_auth(db, uid: str, *, email: str | None, disabled: bool, via: str) -> dict[str, str]:
    """Brings ``users/{uid}`` in step with Auth in one transaction, with ``identity.email_changed``
    when the address changed (``first`` when the profile had none). Returns what changed."""
    ref = db.collection(USERS).document(uid)
    topic = db.collection(EmailChanged.event_type.collection)

    @gcf.transactional
    def apply(txn) -> dict[str, str]:
        snap = ref.get(transaction=txn)
        if not snap.exists:
            return {}
        profile = snap.to_dict()
        changes = auth_changes(profile, email=email, disabled=disabled)
        if not changes:
            return {}
        event_id, first = None, False
        if "email" in changes and changes["email"] and not text_or_empty(profile.get("email")):
            event_id = first_email_event_id(uid)
            first = not topic.document(event_id).get(transaction=txn).exists
            event_id = event_id if first else None
        txn.update(ref, UserDoc.fields(changes, updated_time=gcf.SERVER_TIMESTAMP))
        if "email" in changes:
            events.publish(txn, EmailChanged(uid=uid, first=first, via=via), subject=f"{USERS}/{uid}",
                           event_id=event_id, db=db)
        return changes

    changes = apply(db.transaction())
    if changes:
        log.info("profile brought in step with Auth", changed=sorted(changes), via=via)
    return changes


def sync_from_auth(db, auth, *, uid: str) -> dict[str, str]:
    """``identity_sync_profile``: the profile follows the Auth account now (after linkWithCredential
    or an email change, which no blocking function sees)."""
    try:
        user = auth.get_user(uid)
    except auth.UserNotFoundError as exc:
        raise NotFoundError(f"No user {uid}.", details={"uid": uid}) from exc
    if record_of(db, uid) is None:
        raise FailedPreconditionError("This account has no profile yet: sign in from the app first.",
                                      details={"uid": uid})
    return follow_auth(db, uid, email=user.email, disabled=bool(user.disabled), via="sync")


def grant_pending_role(db, uid: str, *, email: str | None) -> str | None:
    """Grants the role a listed email waited for, now that it is verified. Returns it, or None."""
    ref = db.collection(USERS).document(uid)

    @gcf.transactional
    def grant(txn) -> str | None:
        snap = ref.get(transaction=txn)
        data = snap.to_dict() if snap.exists else {}
        pending, old = data.get("pending_role"), data.get("role") or "member"
        if not pending:
            return None
        listed = listed_role(email)
        update = UserDoc.fields(pending_role=gcf.DELETE_FIELD, updated_time=gcf.SERVER_TIMESTAMP)
        if listed == "member" or listed == old:  # no longer listed (or the email changed): nothing to grant
            txn.update(ref, update)
            return None
        txn.update(ref, UserDoc.fields(update, role=listed))
        events.publish(txn, RoleChanged(uid=uid, old_role=old, new_role=listed, changed_by="email_verified"),
                       subject=f"{USERS}/{uid}", db=db)
        return listed

    role = grant(db.transaction())
    if role:
        log.info("role granted to a verified email", role=role)
    return role


def complete_client_profile(db, auth, uid: str) -> bool:
    """A profile the app created itself: add the server fields, publish user_created once.

    The email and whether it is verified come from the Auth record, never from the
    document; a profile whose Auth account is gone is left to reconciliation."""
    ref = db.collection(USERS).document(uid)

    event_ref = db.collection(UserCreated.event_type.collection).document(ids.person_key(uid))
    try:
        user = auth.get_user(uid)
    except auth.UserNotFoundError:
        log.warning("profile without an Auth user; reconciliation will erase it", subject_uid=uid)
        return False
    role, pending = initial_role(user.email, bool(user.email_verified))

    @gcf.transactional
    def complete(txn) -> bool:
        snap = ref.get(transaction=txn)
        published = event_ref.get(transaction=txn).exists
        if not snap.exists or "profile_source" in snap.to_dict() or published:
            return False  # gone, already complete, or the blocking path won
        data = snap.to_dict()
        txn.update(ref, UserDoc.fields({"role": role, "status": "active", "profile_source": "client",
                                        **({"pending_role": pending} if pending else {})}))
        name = data.get("display_name")
        events.publish(
            txn,
            UserCreated(uid=uid, email=normalise_email(user.email), display_name=name if isinstance(name, str) else None,
                        via="client"),
            subject=f"{USERS}/{uid}",
            event_id=ids.person_key(uid),
            db=db,
        )
        return True

    if not complete(db.transaction()):
        return False
    try:
        auth.set_custom_user_claims(uid, {**(user.custom_claims or {}), "role": role})
        # An identity_set_role that committed after ``complete`` may have written its claim before
        # ours: read the profile again, and its role wins (never a role it no longer has).
        current = (record_of(db, uid) or {}).get("role")
        if current in config.ROLES and current != role:
            apply_role_claim(auth, uid, current)
    except (auth.UserNotFoundError, NotFoundError):
        log.warning("profile without an Auth user; reconciliation will erase it", subject_uid=uid)
    return True


def text_or_empty(value: Any) -> str:
    """A profile field as other users may see it: a string, or nothing (a malformed value is
    never copied into public_profiles). Pure."""
    return value if isinstance(value, str) else ""


def public_fields(profile: dict[str, Any]) -> dict[str, str]:
    """What ``public_profiles/{uid}`` shows of a profile. Pure."""
    return {k: text_or_empty(profile.get(k)) for k in PUBLIC_FIELDS}


def sync_public_profile(db, uid: str, before: dict | None, after: dict | None) -> str:
    """Keeps ``public_profiles/{uid}`` in step with ``users/{uid}``: ``written``, ``deleted`` or
    ``unchanged``.

    The trigger's snapshots only tell whether this write touched the public fields (one that
    did not has nothing to do). What is written comes from ``users/{uid}`` read again in a
    transaction, never from the event: a late or out-of-order trigger (an earlier name edit
    retried after a later one, or after the account was erased) must neither bring back an old
    name nor re-create the public profile of an erased account, which every signed-in user can
    read. No profile, no public profile; a profile being deleted is left to the erasure."""
    if before is not None and after is not None and public_fields(before) == public_fields(after):
        return "unchanged"
    profile_ref = db.collection(USERS).document(uid)
    public_ref = db.collection(PUBLIC_PROFILES).document(uid)

    @gcf.transactional
    def sync(txn) -> str:
        profile = profile_ref.get(transaction=txn)
        public = public_ref.get(transaction=txn)
        if not profile.exists:
            if not public.exists:
                return "unchanged"
            txn.delete(public_ref)
            return "deleted"
        current = profile.to_dict() or {}
        if current.get("status") == "deleting":
            return "unchanged"
        wanted = public_fields(current)
        shown = (public.to_dict() or {}) if public.exists else None
        if shown is not None and shown.get("uid") == uid and all(shown.get(k) == v for k, v in wanted.items()):
            return "unchanged"
        txn.set(public_ref, PublicProfileDoc.new({"uid": uid, **wanted, "updated_time": gcf.SERVER_TIMESTAMP}))
        return "written"

    return sync(db.transaction())


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
            if snap.to_dict().get("pending_role"):  # an admin's choice wins over a role an email waited for
                txn.update(ref, UserDoc.fields(pending_role=gcf.DELETE_FIELD, updated_time=gcf.SERVER_TIMESTAMP))
            return False
        if old == "admin":
            admins = list(
                db.collection(USERS).where(filter=FieldFilter("role", "==", "admin")).limit(2).stream(transaction=txn)
            )
            if len(admins) <= 1:
                raise FailedPreconditionError("The last admin cannot be demoted.", details={"uid": uid})
        txn.update(ref, UserDoc.fields(role=role, pending_role=gcf.DELETE_FIELD, updated_time=gcf.SERVER_TIMESTAMP))
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


def require_recent_login(claims: dict[str, Any], *, now: float, max_age_seconds: int) -> None:
    """Deleting your own account needs a recent sign-in (``auth_time``, not the token's
    refresh time), as Firebase's own ``requires-recent-login``. Pure."""
    auth_time = claims.get("auth_time")
    if isinstance(auth_time, bool) or not isinstance(auth_time, (int, float)) or now - auth_time > max_age_seconds:
        raise FailedPreconditionError(
            "This operation is sensitive and requires a recent sign-in. Sign in again, then retry.",
            details={"reason": "requires-recent-login", "max_age_seconds": max_age_seconds},
        )


def sign_out_everywhere(auth, *, uid: str) -> None:
    """Revokes every session of the account: its refresh tokens, and (the callables check
    the "tokens valid after" stamp) every ID token issued until now."""
    try:
        auth.revoke_refresh_tokens(uid)
    except auth.UserNotFoundError as exc:
        raise NotFoundError(f"No user {uid}.", details={"uid": uid}) from exc


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
        ref.update(UserDoc.fields(status="disabled" if disabled else "active", updated_time=gcf.SERVER_TIMESTAMP))


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


PUBLISHED, IN_PROGRESS, GONE = "published", "in_progress", "gone"


def publish_user_deleted(db, *, uid: str, reason: str) -> bool:
    return publish_deletion(db, uid=uid, reason=reason) == PUBLISHED


def publish_deletion(db, *, uid: str, reason: str) -> str:
    """Publishes ``identity.user_deleted`` for a uid: ``published``, ``in_progress`` (an
    erasure is under way) or ``gone`` (erased, and nothing came back).

    The first deletion's event id is the person's key. A profile that is back after that
    erasure (re-created by the deleted account's old token, which Firestore's rules cannot
    tell from a live one) is erased again, under an event id of its own incarnation."""
    ref = db.collection(USERS).document(uid)
    topic = db.collection(UserDeleted.event_type.collection)

    @gcf.transactional
    def publish(txn) -> str:
        first = topic.document(ids.person_key(uid)).get(transaction=txn)
        profile = ref.get(transaction=txn)
        event_id = ids.person_key(uid)
        if first.exists:
            if not profile.exists:
                return GONE
            if profile.to_dict().get("status") == "deleting":
                return IN_PROGRESS
            event_id = ids.person_key(f"{uid}\n{profile.create_time.isoformat()}")
            if topic.document(event_id).get(transaction=txn).exists:
                return IN_PROGRESS
        events.publish(txn, UserDeleted(uid=uid, reason=reason), subject=f"{USERS}/{uid}", event_id=event_id, db=db)
        if profile.exists:
            txn.update(ref, UserDoc.fields(status="deleting", updated_time=gcf.SERVER_TIMESTAMP))
        return PUBLISHED

    return publish(db.transaction())


def erase_limit(checked: int, *, percent: int, always: int) -> int:
    """How many profiles one reconciliation may erase without an admin's confirmation. Pure."""
    return max(always, checked * percent // 100)


def _is_auth_uid(uid: str) -> bool:
    return 0 < len(uid) <= 128


RECONCILE_STATE = "identity_state/reconciliation"


def reconcile(db, auth, *, confirm: bool = False, page_size: int = 100, max_pages: int | None = None,
              force: bool = True) -> dict[str, Any]:
    """Finds profiles whose Auth account is gone and erases them like a deletion, and brings
    the others' email and status in step with Auth (changes made in the console, an anonymous
    account linked to an email: what no blocking function saw), from the same Auth lookups.

    Works in bounded slices: one run reads at most ``max_pages`` pages of profiles from the
    cursor saved in ``identity_state/reconciliation`` and saves where it stopped, so a
    100,000-user app is covered by successive runs within each run's timeout. A pass that
    reached the end starts again from the first profile; the schedule (``force=False``)
    waits ``IDENTITY_RECONCILE_PASS_HOURS`` between complete passes. A page whose Auth lookup
    fails, or a profile whose erasure cannot be published, is logged, counted and skipped.

    Never skips such a uid (a profile re-created after its erasure is erased again), and
    never erases more than ``erase_limit`` profiles in one run unless ``confirm``: a wrong
    project or tenant must not wipe everyone (the cursor then stays, so the same slice
    waits for the admin's confirmation). What it did not erase, it reports.

    Each run also goes on with the orphan scan (``reconcile_orphans``, its own cursors in the
    same state document, as many pages per collection group): push tokens and notification
    settings left under a uid with neither a profile nor an Auth account are erased through
    ``identity.user_deleted`` like a deletion. While the pass over profiles pauses, a scan not
    finished yet still runs."""
    from firebase_admin.auth import UidIdentifier  # noqa: PLC0415

    max_pages = max_pages or settings.int_value(config.RECONCILE_PAGES_PER_RUN)
    state_ref = db.document(RECONCILE_STATE)
    state = state_ref.get().to_dict() or {}
    cursor = state.get("cursor")
    orphan_cursors = {group: (state.get("orphan_cursors") or {}).get(group) for group in ORPHAN_GROUPS}
    profiles_paused = False
    if not force and cursor is None and state.get("pass_finished_time") is not None:
        age = clock.utcnow() - state["pass_finished_time"]
        profiles_paused = age.total_seconds() < settings.int_value(config.RECONCILE_PASS_HOURS) * 3600
        if profiles_paused and not any(orphan_cursors.values()):  # the orphan scan's pass is over too
            return {"checked": 0, "erased": [], "in_progress": [], "skipped": [], "skipped_count": 0,
                    "limit": 0, "needs_confirmation": False, "failed": 0, "pass_complete": False,
                    "cursor": None, "synced": 0}
    checked, failed, synced, missing = 0, 0, 0, []
    mismatched: list[dict[str, str]] = []
    last, complete = cursor, False
    for _ in range(0 if profiles_paused else max_pages):  # paused: only the orphan scan goes on
        query = db.collection(USERS).order_by("__name__").limit(page_size)
        if last is not None:
            query = query.start_after({"__name__": db.collection(USERS).document(last)})
        page = list(query.stream())
        if not page:
            complete = True
            break
        last = page[-1].id
        uids = [snap.id for snap in page]
        checked += len(uids)
        lookup = [u for u in uids if _is_auth_uid(u)]
        try:
            result = auth.get_users([UidIdentifier(u) for u in lookup]) if lookup else None
        except Exception as exc:  # noqa: BLE001 - one failed page never stops the pass
            failed += len(lookup)
            log.error("reconciliation skipped a page: Auth lookup failed", first=uids[0], last=last,
                      error=f"{type(exc).__name__}: {exc}"[:300])
            lookup, result = [], None
        gone = {ident.uid for ident in result.not_found} if result else set()
        missing += [u for u in uids if u in gone or not _is_auth_uid(u)]  # no Auth account can hold that id
        profiles = {snap.id: snap.to_dict() or {} for snap in page}
        for user in (result.users if result else []):  # the profile follows Auth: email, disabled
            differs = role_mismatch(profiles[user.uid], user.custom_claims) if user.uid in profiles else None
            if differs:
                mismatched.append({"uid": user.uid, "profile_role": differs[0], "claim_role": differs[1]})
                log.warning("the profile's role and the role claim differ: set it with identity_set_role",
                            uid=user.uid, profile_role=differs[0], claim_role=differs[1])
            if user.uid not in profiles or not auth_changes(profiles[user.uid], email=user.email,
                                                            disabled=bool(user.disabled)):
                continue
            try:
                follow_auth(db, user.uid, email=user.email, disabled=bool(user.disabled), via="reconciliation")
                synced += 1
            except Exception as exc:  # noqa: BLE001 - one bad profile never stops the others
                failed += 1
                log.error("reconciliation could not bring a profile in step with Auth", uid=user.uid,
                          error=f"{type(exc).__name__}: {exc}"[:300])
        if len(page) < page_size:
            complete = True
            break
    limit = erase_limit(checked, percent=settings.int_value(config.RECONCILE_MAX_ERASE_PERCENT),
                        always=settings.int_value(config.RECONCILE_ALWAYS_ERASE))
    report: dict[str, Any] = {"checked": checked, "erased": [], "in_progress": [], "skipped": [],
                              "skipped_count": 0, "limit": limit, "needs_confirmation": False,
                              "failed": failed, "pass_complete": complete, "cursor": None if complete else last,
                              "synced": synced, "role_mismatches": mismatched[:100],
                              "role_mismatch_count": len(mismatched)}
    if len(missing) > limit and not confirm:
        report.update(skipped=missing[:100], skipped_count=len(missing), needs_confirmation=True,
                      pass_complete=False, cursor=cursor)
        log.warning("reconciliation refused: too many profiles without an Auth account; an admin must confirm",
                    checked=checked, missing=len(missing), limit=limit)
        missing = []  # the cursor stays: the same slice waits for the admin's confirmation
    for uid in missing:
        try:
            outcome = publish_deletion(db, uid=uid, reason="reconciliation")
        except Exception as exc:  # noqa: BLE001 - one bad profile never stops the others
            report["failed"] += 1
            log.error("reconciliation skipped a profile", uid=uid, error=f"{type(exc).__name__}: {exc}"[:300])
            continue
        if outcome == PUBLISHED:
            report["erased"].append(uid)
        elif outcome == IN_PROGRESS:
            report["in_progress"].append(uid)
    orphans = reconcile_orphans(db, auth, cursors=orphan_cursors, page_size=page_size, max_pages=max_pages)
    report.update(orphans_checked=orphans["checked"], orphans_erased=orphans["erased"][:100],
                  orphans_erased_count=len(orphans["erased"]), orphans_pass_complete=orphans["pass_complete"])
    report["failed"] += orphans["failed"]
    now = clock.utcnow()
    if profiles_paused:  # the profile pass stays finished (its pause runs from then)
        profile_state: dict[str, Any] = {}
    else:
        profile_state = {"cursor": report["cursor"],
                         **({"pass_finished_time": now} if report["pass_complete"] else {})}
    state_ref.set(IdentityStateDoc.fields({
        **profile_state, "orphan_cursors": orphans["cursors"], "updated_time": now,
        "last_counts": {"checked": checked, "erased": len(report["erased"]), "failed": report["failed"],
                        "synced": synced, "orphans_checked": orphans["checked"],
                        "orphans_erased": len(orphans["erased"])}}), merge=True)
    log.info("reconciliation finished", checked=checked, erased=len(report["erased"]), failed=report["failed"],
             in_progress=len(report["in_progress"]), synced=synced, confirmed=confirm,
             pass_complete=report["pass_complete"], orphans_checked=orphans["checked"],
             orphans_erased=len(orphans["erased"]))
    return report


# Per-user subcollections the app writes itself (FlutterFlow's push tokens, the notification
# settings), so a deleted account's unexpired ID token (up to an hour) can write them after its
# erasure. Queries never return a missing parent document, so the pass over profiles cannot find
# them; the orphan scan pages these collection groups instead. Named here, not imported: identity
# imports no other domain (notifications owns them and erases them on identity.user_deleted).
ORPHAN_GROUPS = ("fcm_tokens", "settings")


def owner_of(path: str) -> str | None:
    """The uid of a document at ``users/{uid}/<subcollection>/<id>``; None for one elsewhere (a
    collection group of the same name under another collection). Pure."""
    parts = path.split("/")
    return parts[1] if len(parts) == 4 and parts[0] == USERS and parts[1] else None


def earliest_by_owner(rows: list[tuple[str, Any]]) -> dict[str, Any]:
    """{uid: the earliest create time of its documents} from (path, create time) rows, for the
    documents under a profile path. Pure."""
    out: dict[str, Any] = {}
    for path, created in rows:
        uid = owner_of(path)
        if uid is not None and (uid not in out or created < out[uid]):
            out[uid] = created
    return out


def erasure_covers(erasure_time: Any, created: Any) -> bool:
    """Whether an erasure published at ``erasure_time`` covers a document created at ``created``:
    its erasers ran after the document existed, so they deleted it (or are still to run, or wait
    as a dead letter for an admin's replay). Pure."""
    return erasure_time is not None and created is not None and created <= erasure_time


KEPT = "kept"  # the uid has a profile again: the pass over profiles judges it


def publish_orphan_deletion(db, *, uid: str, since: Any) -> str:
    """Publishes ``identity.user_deleted`` (reason ``reconciliation``) for a uid whose documents
    outlived its profile and its Auth account, so every domain's eraser runs again (notifications
    deletes the push tokens and settings). ``since``: the earliest create time of the orphans.

    ``published``; ``in_progress`` when the person's first erasure was published after ``since``
    (it covers them) or this orphan's erasure was published already; ``kept`` when a profile
    exists again. A uid never erased gets the person's key as its event id, as a first deletion;
    a later one an id of its own, from ``since``."""
    ref = db.collection(USERS).document(uid)
    topic = db.collection(UserDeleted.event_type.collection)

    @gcf.transactional
    def publish(txn) -> str:
        if ref.get(transaction=txn).exists:
            return KEPT
        first = topic.document(ids.person_key(uid)).get(transaction=txn)
        event_id = ids.person_key(uid)
        if first.exists:
            if erasure_covers((first.to_dict() or {}).get("time"), since):
                return IN_PROGRESS
            event_id = ids.person_key(f"{uid}\norphaned\n{since.isoformat()}")
            if topic.document(event_id).get(transaction=txn).exists:
                return IN_PROGRESS
        events.publish(txn, UserDeleted(uid=uid, reason="reconciliation"), subject=f"{USERS}/{uid}",
                       event_id=event_id, db=db)
        return PUBLISHED

    return publish(db.transaction())


def reconcile_orphans(db, auth, *, cursors: dict[str, str | None], page_size: int,
                      max_pages: int) -> dict[str, Any]:
    """The orphan scan: pages each of ``ORPHAN_GROUPS`` from its saved cursor (at most
    ``max_pages`` pages of ``page_size`` documents each per run, like the pass over profiles),
    finds the uids under ``users/`` that have neither a profile nor an Auth account, and
    publishes their erasure (``publish_orphan_deletion``). A uid with an Auth account but no
    profile yet is left alone (an account whose profile the app has not created). Nothing a
    live user holds is touched, so no admin's confirmation is asked: a wrong project or tenant
    leaves every profile in place. A page whose Auth lookup fails is logged, counted and skipped.
    Returns {checked, erased (uids), failed, pass_complete, cursors}."""
    from firebase_admin.auth import UidIdentifier  # noqa: PLC0415

    checked, failed, erased = 0, 0, []
    handled: set[str] = set()  # one erasure per uid and run, whichever group or page found it
    new_cursors: dict[str, str | None] = {}
    complete_all = True
    for group in ORPHAN_GROUPS:
        last, complete = cursors.get(group), False
        for _ in range(max_pages):
            query = db.collection_group(group).order_by("__name__").limit(page_size)
            if last is not None:
                query = query.start_after({"__name__": db.document(last)})
            page = list(query.stream())
            if not page:
                complete = True
                break
            last = page[-1].reference.path
            checked += len(page)
            owners = earliest_by_owner([(snap.reference.path, clock.as_datetime(snap.create_time)) for snap in page])
            profiles = {snap.id for snap in db.get_all([db.collection(USERS).document(u) for u in owners])
                        if snap.exists} if owners else set()
            candidates = [u for u in owners if u not in profiles and u not in handled]
            lookup = [u for u in candidates if _is_auth_uid(u)]
            try:
                result = auth.get_users([UidIdentifier(u) for u in lookup]) if lookup else None
            except Exception as exc:  # noqa: BLE001 - one failed page never stops the scan
                failed += len(lookup)
                log.error("reconciliation skipped orphans: Auth lookup failed", group=group, last=last,
                          error=f"{type(exc).__name__}: {exc}"[:300])
                candidates = [u for u in candidates if not _is_auth_uid(u)]
                result = None
            gone = {ident.uid for ident in result.not_found} if result else set()
            for uid in candidates:
                if _is_auth_uid(uid) and uid not in gone:
                    continue  # an Auth account without a profile yet: not an orphan
                handled.add(uid)
                try:
                    outcome = publish_orphan_deletion(db, uid=uid, since=owners[uid])
                except Exception as exc:  # noqa: BLE001 - one bad uid never stops the others
                    failed += 1
                    log.error("reconciliation could not erase orphans", uid=uid,
                              error=f"{type(exc).__name__}: {exc}"[:300])
                    continue
                if outcome == PUBLISHED:
                    erased.append(uid)
                    log.warning("reconciliation found documents of an erased account: erasing them", uid=uid,
                                group=group)
            if len(page) < page_size:
                complete = True
                break
        new_cursors[group] = None if complete else last
        complete_all = complete_all and complete
    return {"checked": checked, "erased": erased, "failed": failed,
            "pass_complete": complete_all, "cursors": new_cursors}


def erase(db, uid: str) -> None:
    """Identity's part of an erasure: the profile and the public profile."""
    db.collection(USERS).document(uid).delete()
    db.collection(PUBLIC_PROFILES).document(uid).delete()
