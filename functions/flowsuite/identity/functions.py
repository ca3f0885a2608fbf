"""Identity functions: thin triggers over ``flowsuite.identity.service``."""

from __future__ import annotations

import time

from firebase_functions import identity_fn, scheduler_fn

from flowsuite.core import clients, errors, log, options, settings
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.core.errors import PermissionDeniedError
from flowsuite.identity import config, models, service, triggers
from flowsuite.identity.triggers import *  # noqa: F403 - its document triggers, served alone (registry.own_module)

__all__ = [
    "identity_before_user_created",
    "identity_before_user_signed_in",
    *triggers.__all__,
    "identity_set_role",
    "identity_disable_user",
    "identity_delete_account",
    "identity_sign_out_everywhere",
    "identity_sync_profile",
    "identity_run_reconciliation",
    "identity_reconcile_accounts",
]

ADMIN = ("admin",)


@options.trigger(identity_fn.before_user_created)
def identity_before_user_created(event: identity_fn.AuthBlockingEvent) -> identity_fn.BeforeCreateResponse:
    """Sign-up: refuses blocked domains, sets the role claim (a listed email's role only when verified),
    creates the profile, publishes user_created."""
    with log.bind(domain="identity", function="identity_before_user_created", uid=event.data.uid):
        try:
            role = service.create_profile_on_sign_up(clients.firestore(), event.data)
        except errors.FlowsuiteError as exc:
            log.info("sign-up refused", error=exc.message)
            raise errors.to_https_error(exc, event.event_id) from None
        log.info("user signed up", role=role)
        return identity_fn.BeforeCreateResponse(custom_claims={"role": role})


@options.trigger(identity_fn.before_user_signed_in)
def identity_before_user_signed_in(event: identity_fn.AuthBlockingEvent) -> identity_fn.BeforeSignInResponse | None:
    """Sign-in, judged by Auth's record: refuses disabled accounts and blocked email domains; the
    profile's email and status follow Auth (a blocking function may write Firestore); grants a
    role a listed email waited for once verified. Otherwise it returns no claims, so Auth keeps
    the account's own: a role read here could be stale by the time Auth saves the answer (a
    demotion in between), and identity_set_role is the role claim's writer (see
    ``service.on_sign_in``)."""
    with log.bind(domain="identity", function="identity_before_user_signed_in", uid=event.data.uid):
        try:
            role = service.on_sign_in(clients.firestore(), event.data)
        except errors.FlowsuiteError as exc:
            log.info("sign-in refused", error=exc.message)
            raise errors.to_https_error(exc, event.event_id) from None
        if role is None:
            return None  # the account's claims stay as they are
        claims = dict(event.data.custom_claims or {})
        return identity_fn.BeforeSignInResponse(custom_claims={**claims, "role": role})


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
    """Deletes an account: your own (after a recent sign-in, else `failed-precondition` with
    details.reason `requires-recent-login`), or anyone's as an admin. Every domain erases its data."""
    uid = req.uid or ctx.require_uid()
    if uid != ctx.uid and ctx.role != "admin":
        raise PermissionDeniedError("Only an admin can delete another user's account.")
    if uid == ctx.uid:
        service.require_recent_login(ctx.claims, now=time.time(),
                                     max_age_seconds=settings.int_value(config.RECENT_LOGIN_SECONDS))
    reason = "self" if uid == ctx.uid else "admin"
    service.delete_account(clients.firestore(), clients.auth(), uid=uid, reason=reason)
    return models.DeleteAnswer(uid=uid, deleted=True)


@callable_function(request=models.SignOutEverywhere, response=models.SignOutAnswer)
def identity_sign_out_everywhere(ctx: CallContext, req: models.SignOutEverywhere) -> models.SignOutAnswer:
    """Signs an account out everywhere: your own, or anyone's as an admin. Every session's tokens are
    refused from now on; the app signs in again."""
    uid = req.uid or ctx.require_uid()
    if uid != ctx.uid and ctx.role != "admin":
        raise PermissionDeniedError("Only an admin can sign another user out.")
    service.sign_out_everywhere(clients.auth(), uid=uid)
    return models.SignOutAnswer(uid=uid, revoked=True)


@callable_function(request=models.SyncProfile, response=models.SyncAnswer)
def identity_sync_profile(ctx: CallContext, req: models.SyncProfile) -> models.SyncAnswer:
    """Brings your profile in step with your Auth account now (email, status): call it after
    linkWithCredential upgrades an anonymous account, or after an email change, which no blocking
    function sees. A first address gets the welcome email."""
    uid = ctx.require_uid()
    changes = service.sync_from_auth(clients.firestore(), clients.auth(), uid=uid)
    return models.SyncAnswer(uid=uid, changed=sorted(changes))


@callable_function(request=models.RunReconciliation, response=models.ReconciliationAnswer, roles=ADMIN)
def identity_run_reconciliation(ctx: CallContext, req: models.RunReconciliation) -> models.ReconciliationAnswer:
    """Erases profiles whose Auth account was deleted outside the suite (admin, on demand): one slice
    from the saved cursor (`pass_complete` says whether it reached the last profile). Beyond the
    configured share of profiles it erases nothing and reports them, until called with `confirm`. It also
    erases push tokens and notification settings left under a uid with neither profile nor Auth account."""
    return models.ReconciliationAnswer(**service.reconcile(
        clients.firestore(), clients.auth(), confirm=req.confirm, max_pages=req.pages, page_size=req.page_size))


@options.trigger(scheduler_fn.on_schedule, schedule="every 30 minutes")
def identity_reconcile_accounts(event: scheduler_fn.ScheduledEvent) -> None:
    """Python has no Auth onDelete trigger, so deletions made elsewhere are found here (and
    emails or disabling changed in the console are copied to the profile): one bounded slice
    per run from the saved cursor, a new pass every IDENTITY_RECONCILE_PASS_HOURS (never more
    than the configured share erased without an admin's confirmation)."""
    service.reconcile(clients.firestore(), clients.auth(), force=False)
