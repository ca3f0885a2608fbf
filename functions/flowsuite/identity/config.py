"""Identity's parameters (set at deploy; locally in functions/.env.local)."""

from __future__ import annotations

from firebase_functions import params

from flowsuite.core import settings

ADMIN_EMAILS = params.StringParam(
    "ADMIN_EMAILS", default="",
    description="Comma-separated emails that become admin once verified (python -m devtools.grant_admin otherwise).",
)
STAFF_EMAILS = params.StringParam(
    "STAFF_EMAILS", default="", description="Comma-separated emails that become staff once verified."
)
# Read by notifications too, so declared in the kernel's settings.
BLOCKED_EMAIL_DOMAINS = settings.BLOCKED_EMAIL_DOMAINS

# Revoked means revoked: deleting your own account needs a sign-in this recent (Firebase's
# "requires-recent-login" is 5 minutes).
RECENT_LOGIN_SECONDS = params.IntParam(
    "IDENTITY_RECENT_LOGIN_SECONDS", default=300,
    description="Deleting your own account needs a sign-in at most this many seconds old.",
)
# Reconciliation is safe: a run that would erase more than this share of the profiles it
# checked (a wrong project or tenant, an Auth outage) erases nothing until an admin confirms.
RECONCILE_MAX_ERASE_PERCENT = params.IntParam(
    "IDENTITY_RECONCILE_MAX_ERASE_PERCENT", default=10,
    description="Reconciliation erases at most this percentage of the profiles it checks unless an admin confirms.",
)
RECONCILE_ALWAYS_ERASE = params.IntParam(
    "IDENTITY_RECONCILE_ALWAYS_ERASE", default=5,
    description="Reconciliation may always erase this many profiles in one run, whatever the share.",
)
# Reconciliation reads profiles in slices from a saved cursor (identity_state/reconciliation),
# so every profile of a large app is reached within each run's timeout.
RECONCILE_PAGES_PER_RUN = params.IntParam(
    "IDENTITY_RECONCILE_PAGES_PER_RUN", default=40,
    description="Pages of 100 profiles one reconciliation run checks before saving its cursor.",
)
RECONCILE_PASS_HOURS = params.IntParam(
    "IDENTITY_RECONCILE_PASS_HOURS", default=24,
    description="Hours the scheduled reconciliation waits after a complete pass before starting the next.",
)

ROLES = ("member", "staff", "admin")


csv = settings.csv_value
