"""Notifications' parameters and secrets."""

from __future__ import annotations

import os

from firebase_functions import params

SMTP_HOST = params.StringParam("SMTP_HOST", default="", description="SMTP server; empty disables email.")
SMTP_PORT = params.IntParam("SMTP_PORT", default=587, description="SMTP port.")
SMTP_USER = params.StringParam("SMTP_USER", default="", description="SMTP user; empty for no login.")
SMTP_SECURITY = params.StringParam("SMTP_SECURITY", default="starttls", description="starttls, ssl or none.")
MAIL_FROM = params.StringParam("MAIL_FROM", default="flowsuite <no-reply@flowsuite.test>",
                               description="The From header of every email.")
APP_NAME = params.StringParam("APP_NAME", default="flowsuite", description="Your app's name, used in messages.")
SMTP_PASSWORD = params.SecretParam("SMTP_PASSWORD", description="SMTP password.")
SECRETS = [SMTP_PASSWORD]

# Targeted FlutterFlow pushes (ff_user_push_notifications) stay targeted: a cap on the
# recipients of one push, by the sender's role, and a per-sender budget of recipients per window.
PUSH_MAX_RECIPIENTS = params.IntParam(
    "PUSH_MAX_RECIPIENTS", default=10, description="Recipients one member's targeted push may name.")
PUSH_MAX_RECIPIENTS_STAFF = params.IntParam(
    "PUSH_MAX_RECIPIENTS_STAFF", default=100, description="Recipients one staff member's targeted push may name.")
PUSH_MAX_RECIPIENTS_ADMIN = params.IntParam(
    "PUSH_MAX_RECIPIENTS_ADMIN", default=1000, description="Recipients one admin's targeted push may name.")
PUSH_RATE_LIMIT = params.IntParam(
    "PUSH_RATE_LIMIT", default=30,
    description="Recipients of targeted pushes per sender per window (staff and admins: at least their cap).")
PUSH_RATE_WINDOW_SECONDS = 60
# Cloud Tasks holds a task at most 30 days: a push scheduled later is refused when created.
PUSH_SCHEDULE_HORIZON_DAYS = 30
FCM_CHUNK = 500

# Device tokens. FCM's registration tokens (Android, APNs-derived iOS, web) are about 150-180
# characters of letters, digits, '_', ':' and '-': the rules and addFcmToken accept that shape,
# up to FCM_TOKEN_MAX characters (firestore.rules checks the same).
FCM_TOKEN_MAX = 1024
FCM_TOKEN_PATTERN = r"^[A-Za-z0-9_:\-]+$"
# A push reaches at most this many devices of one user (their newest tokens by created_at): a
# user who registers thousands of tokens costs a broadcast ten sends, not thousands.
PUSH_TOKENS_PER_USER = 10
# A broadcast reads the project's tokens this many at a time (and sends as it reads), and stops
# sending after PUSH_SEND_BUDGET_SECONDS, before the function's timeout (120 s) kills it, so that
# the push always ends with its status and the devices it reached.
PUSH_TOKEN_PAGE = 500
PUSH_SEND_BUDGET_SECONDS = 90

# What a push document's app-written fields may hold; firestore.rules checks the same.
PUSH_TITLE_MAX = 200
PUSH_TEXT_MAX = 1000
PUSH_IMAGE_URL_MAX = 2048
PUSH_SOUND_MAX = 100
PUSH_PAGE_MAX = 200
PUSH_PARAMETER_DATA_MAX = 2000
PUSH_USER_REFS_MAX = 50_000
PUSH_AUDIENCES = ("", "All", "iOS", "Android")


def value(param) -> str:
    raw = os.environ.get(param.name)
    return raw if raw not in (None, "") else str(param.default if param.default is not None else "")
