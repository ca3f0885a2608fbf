"""Requests and answers of the identity callables."""

from __future__ import annotations

from typing import Literal

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


class RunReconciliation(Request):
    pass


class ReconciliationAnswer(Response):
    checked: int
    erased: list[str]
