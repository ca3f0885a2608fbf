"""Requests and answers of the identity callables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from flowsuite.core.models import Request, Response

Uid = str


class SetRole(Request):
    uid: Uid = Field(min_length=1, max_length=128)
    role: Literal["member", "staff", "admin"]


class RoleAnswer(Response):
    uid: str
    role: str
    changed: bool


class DisableUser(Request):
    uid: Uid = Field(min_length=1, max_length=128)
    disabled: bool


class DisableAnswer(Response):
    uid: str
    disabled: bool


class DeleteAccount(Request):
    uid: Uid | None = Field(default=None, min_length=1, max_length=128)


class DeleteAnswer(Response):
    uid: str
    deleted: bool


class RunReconciliation(Request):
    pass


class ReconciliationAnswer(Response):
    checked: int
    erased: list[str]
