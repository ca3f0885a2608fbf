"""Identity functions: thin triggers over ``flowsuite.identity.service``."""

from __future__ import annotations

from firebase_functions import firestore_fn, identity_fn, scheduler_fn

from flowsuite.core import clients, errors, log, options
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.core.errors import PermissionDeniedError
from flowsuite.identity import models, service
from flowsuite.identity.erasure import eraser

__all__ = [
    "identity_before_user_created",
    "identity_before_user_signed_in",
    "identity_on_profile_written",
    "identity_set_role",
    "identity_disable_user",
    "identity_delete_account",
    "identity_run_reconciliation",
    "identity_reconcile_accounts",
    "identity_on_user_deleted",
]

options.apply()
ADMIN = ("admin",)


@identity_fn.before_user_created()
def identity_before_user_created(event: identity_fn.AuthBlockingEvent) -> identity_fn.BeforeCreateResponse:
    """Sign-up: refuses blocked domains, sets the role claim, creates the profile, publishes user_created."""
    with log.bind(domain="identity", function="identity_before_user_created", uid=event.data.uid):
        try:
            role = service.create_profile_on_sign_up(clients.firestore(), event.data)
        except errors.FlowsuiteError as exc:
            log.info("sign-up refused", error=exc.message)
            raise errors.to_https_error(exc, event.event_id) from None
        log.info("user signed up", role=role)
        return identity_fn.BeforeCreateResponse(custom_claims={"role": role})


@identity_fn.before_user_signed_in()
def identity_before_user_signed_in(event: identity_fn.AuthBlockingEvent) -> identity_fn.BeforeSignInResponse | None:
    """Sign-in: refuses disabled users; keeps the role claim in step with the record."""
    with log.bind(domain="identity", function="identity_before_user_signed_in", uid=event.data.uid):
        if event.data.disabled:
            raise errors.to_https_error(PermissionDeniedError("This account is disabled."), event.event_id)
        role, status = service.role_on_record(clients.firestore(), event.data.uid)
        if status == "disabled":
            raise errors.to_https_error(PermissionDeniedError("This account is disabled."), event.event_id)
        if status == "deleting":
            raise errors.to_https_error(PermissionDeniedError("This account is being deleted."), event.event_id)
        if role is None:
            return None
        claims = dict(event.data.custom_claims or {})
        return identity_fn.BeforeSignInResponse(custom_claims={**claims, "role": role})


@firestore_fn.on_document_written(document="users/{uid}")
def identity_on_profile_written(event: firestore_fn.Event[firestore_fn.Change]) -> None:
    """Completes a profile the app created itself, keeps public_profiles in step."""
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


@callable_function(request=models.SetRole, response=models.RoleAnswer, roles=ADMIN)
def identity_set_role(ctx: CallContext, req: models.SetRole) -> models.RoleAnswer:
    """Sets a user's role (admin); the new role is in their next ID token."""
    changed = service.set_role(clients.firestore(), clients.auth(), uid=req.uid, role=req.role, changed_by=ctx.uid)
    return models.RoleAnswer(uid=req.uid, role=req.role, changed=changed)


@callable_function(request=models.DisableUser, response=models.DisableAnswer, roles=ADMIN)
def identity_disable_user(ctx: CallContext, req: models.DisableUser) -> models.DisableAnswer:
    """Disables or re-enables a user (admin)."""
    service.disable_user(clients.firestore(), clients.auth(), uid=req.uid, disabled=req.disabled, by=ctx.uid)
    return models.DisableAnswer(uid=req.uid, disabled=req.disabled)


@callable_function(request=models.DeleteAccount, response=models.DeleteAnswer)
def identity_delete_account(ctx: CallContext, req: models.DeleteAccount) -> models.DeleteAnswer:
    """Deletes an account: your own, or anyone's as an admin. Every domain erases its data."""
    uid = req.uid or ctx.require_uid()
    if uid != ctx.uid and ctx.role != "admin":
        raise PermissionDeniedError("Only an admin can delete another user's account.")
    reason = "self" if uid == ctx.uid else "admin"
    service.delete_account(clients.firestore(), clients.auth(), uid=uid, reason=reason)
    return models.DeleteAnswer(uid=uid, deleted=True)


@callable_function(request=models.RunReconciliation, response=models.ReconciliationAnswer, roles=ADMIN)
def identity_run_reconciliation(ctx: CallContext, req: models.RunReconciliation) -> models.ReconciliationAnswer:
    """Erases profiles whose Auth account was deleted outside the suite (admin, on demand)."""
    checked, erased = service.reconcile(clients.firestore(), clients.auth())
    return models.ReconciliationAnswer(checked=checked, erased=erased)


@scheduler_fn.on_schedule(schedule="every 24 hours")
def identity_reconcile_accounts(event: scheduler_fn.ScheduledEvent) -> None:
    """Daily: Python has no Auth onDelete trigger, so deletions made elsewhere are found here."""
    service.reconcile(clients.firestore(), clients.auth())


@eraser(collections=(service.USERS, service.PUBLIC_PROFILES))
def identity_on_user_deleted(db, uid: str) -> None:
    service.erase(db, uid)
