"""Identity document triggers (``identity_on_*``): an instance serving one imports this module
alone (``registry.own_module``); ``flowsuite.identity.functions`` re-exports them."""

from __future__ import annotations

from firebase_functions import firestore_fn

from flowsuite.core import clients, log, options
from flowsuite.core.erasure import eraser
from flowsuite.identity import service

__all__ = ["identity_on_profile_written", "identity_on_user_deleted"]


@options.trigger(firestore_fn.on_document_written, document="users/{uid}")
def identity_on_profile_written(event: firestore_fn.Event[firestore_fn.Change]) -> None:
    """Completes a profile the app created itself, keeps public_profiles in step (from the profile
    as it is now, not from this event: a late trigger never brings back an old name or an erased
    account's public profile)."""
    uid = event.params["uid"]
    before = event.data.before.to_dict() if event.data.before is not None and event.data.before.exists else None
    after = event.data.after.to_dict() if event.data.after is not None and event.data.after.exists else None
    with log.bind(domain="identity", function="identity_on_profile_written", uid=uid):
        db = clients.firestore()
        if before is None and after is not None and "profile_source" not in after:
            service.complete_client_profile(db, clients.auth(), uid)
        if after is not None and after.get("status") == "deleting":
            return
        service.sync_public_profile(db, uid, before, after)


@eraser(collections=(service.USERS, service.PUBLIC_PROFILES))
def identity_on_user_deleted(db, uid: str) -> None:
    service.erase(db, uid)
