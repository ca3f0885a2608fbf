"""Requests and answers of the identity callables."""

from typing import Literal

from pydantic import Field

from flowsuite.core.models import Request, Response, Uid


class SetRole(Request):
    uid: Uid
    role: Literal["member", "staff", "admin"]


class RoleAnswer(Response):
    uid: str
    role: str
    changed: bool


class DisableUser(Request):
    uid: Uid
    disabled: bool


class DisableAnswer(Response):
    uid: str
    disabled: bool


class DeleteAccount(Request):
    uid: Uid | None = None


class DeleteAnswer(Response):
    uid: str
    deleted: bool


class SignOutEverywhere(Request):
    uid: Uid | None = None  # another user's (admins only); your own when left out


class SignOutAnswer(Response):
    uid: str
    revoked: bool


class RunReconciliation(Request):
    confirm: bool = Field(default=False, description="Erase even when more than the configured share of profiles "
                                                      "has no Auth account (after checking the project is right).")
    pages: int | None = Field(default=None, ge=1, le=100, description="Pages this run checks from the saved cursor "
                                                                     "(default IDENTITY_RECONCILE_PAGES_PER_RUN).")
    page_size: int = Field(default=100, ge=1, le=100, description="Profiles per page (one Auth lookup each).")


class RoleMismatch(Response):
    uid: str
    profile_role: str
    claim_role: str


class ReconciliationAnswer(Response):
    checked: int
    erased: list[str]
    in_progress: list[str] = Field(description="Profiles whose erasure is already under way.")
    skipped: list[str] = Field(description="Profiles without an Auth account left alone, as the run needs an "
                                           "admin's confirmation (the first 100).")
    skipped_count: int
    limit: int = Field(description="Profiles this run could erase without confirmation.")
    needs_confirmation: bool
    failed: int = Field(default=0, description="Profiles skipped because their Auth lookup or erasure failed.")
    synced: int = Field(default=0, description="Profiles whose email or status was brought in step with Auth.")
    pass_complete: bool = Field(default=True, description="This run reached the last profile.")
    cursor: str | None = Field(default=None, description="The last profile checked; the next run starts after it.")
    role_mismatches: list[RoleMismatch] = Field(
        default_factory=list, description="Accounts whose profile role and role claim differ (a hand edit), the "
                                          "first 100: reported, not changed; identity_set_role sets both.")
    role_mismatch_count: int = 0
    orphans_checked: int = Field(default=0, description="Push tokens and notification settings documents this run "
                                                        "checked for an owner with neither profile nor Auth account.")
    orphans_erased: list[str] = Field(
        default_factory=list, description="Uids whose orphaned push tokens or settings (written after the account's "
                                          "erasure) this run erased through identity.user_deleted (the first 100).")
    orphans_erased_count: int = 0
    orphans_pass_complete: bool = Field(default=True, description="The orphan scan reached the last document of "
                                                                  "each collection group.")


class SyncProfile(Request):
    """No fields: the caller's own profile."""


class SyncAnswer(Response):
    uid: str
    changed: list[str] = Field(description="The profile fields brought in step with Auth (email, status).")
