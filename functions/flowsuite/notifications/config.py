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

# FlutterFlow push requests a sender may make per window (ff_user_push_notifications).
PUSH_RATE_LIMIT = params.IntParam("PUSH_RATE_LIMIT", default=10, description="Targeted pushes per sender per window.")
PUSH_RATE_WINDOW_SECONDS = 60
FCM_CHUNK = 500


def value(param) -> str:
    raw = os.environ.get(param.name)
    return raw if raw not in (None, "") else str(param.default if param.default is not None else "")
