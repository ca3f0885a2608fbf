"""Whether an account still lives, for a domain about to write a record that names it.

Identity marks the profile (``users/{uid}``, identity's; other domains only read it, as
``docs/collections.md`` says) ``deleting`` in the transaction that publishes
identity.user_deleted, and each domain's eraser then erases or anonymises what names the
user. A record written after that event would be missed by an eraser that already ran, so
a domain that records something naming a user reads the profile in the same transaction
(a read lock: the deletion's transaction waits for it, or it sees ``deleting``).
"""

from __future__ import annotations

from typing import Any

from flowsuite.core import ids

USERS = "users"  # identity's profiles, read only
DELETED_USER = "deleted-user"  # what an erased or anonymised record names instead of the person


def account_gone(uid: str, profile: dict[str, Any] | None, *, deletion_published: bool = False) -> bool:
    """Whether a record written now must not name ``uid``: it is already the deleted-user
    placeholder, or the account is being deleted (its profile is ``deleting``, which identity
    sets in the transaction that publishes identity.user_deleted) or was (its profile is gone
    and that event exists), so the erasers may have run already and would never see the
    record. A profile missing without that event is a live account whose profile was never
    made or was removed by hand (the app's own sign-up, the console): it keeps its records.
    A ``disabled`` profile is a live account too (Auth decides whether it may call). Pure."""
    if uid == DELETED_USER:
        return True
    if profile is not None:
        return profile.get("status") == "deleting"
    return deletion_published


def profile_ref(db, uid: str):
    return db.collection(USERS).document(uid)


def account_gone_in(txn, db, uid: str, *, profile=None) -> bool:
    """``account_gone``, read in the caller's transaction (before any of its writes): the
    profile, and only when it is missing, the person's identity.user_deleted event (its id is
    the person's key). ``profile``: the profile's snapshot when the caller already read it in
    this transaction, in one batch with its own reads (a round trip less)."""
    from flowsuite.contracts.identity import UserDeleted  # noqa: PLC0415 - not on every checkout step's import path

    if uid == DELETED_USER:
        return True
    if profile is None:
        profile = profile_ref(db, uid).get(transaction=txn)
    if profile.exists:
        return account_gone(uid, profile.to_dict())
    deletion = db.collection(UserDeleted.event_type.collection).document(ids.person_key(uid)).get(transaction=txn)
    return account_gone(uid, None, deletion_published=deletion.exists)
