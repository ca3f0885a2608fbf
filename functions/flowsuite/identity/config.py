"""Identity's parameters (set at deploy; locally in functions/.env.local)."""

from __future__ import annotations

import os

from firebase_functions import params

ADMIN_EMAILS = params.StringParam(
    "ADMIN_EMAILS", default="", description="Comma-separated emails that sign up as admin."
)
STAFF_EMAILS = params.StringParam(
    "STAFF_EMAILS", default="", description="Comma-separated emails that sign up as staff."
)
BLOCKED_EMAIL_DOMAINS = params.StringParam(
    "BLOCKED_EMAIL_DOMAINS", default="", description="Comma-separated email domains refused at sign-up."
)

ROLES = ("member", "staff", "admin")


def csv(param: params.StringParam) -> frozenset[str]:
    raw = os.environ.get(param.name, param.default or "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
