"""The one place that builds clients: lazily, on first use, emulator-aware.

Nothing here runs at import time. Under the emulators the Firestore client is
built straight from ``google.cloud.firestore`` because ``firebase_admin``'s
helper asks for Google credentials that a ``demo-`` project never has.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from flowsuite.core import metering, settings

if TYPE_CHECKING:  # pragma: no cover
    import firebase_admin
    from google.cloud.firestore import Client


@functools.cache
def app() -> firebase_admin.App:
    import firebase_admin  # noqa: PLC0415 - heavy, built on first use

    try:
        return firebase_admin.get_app()
    except ValueError:
        return firebase_admin.initialize_app(options={"projectId": settings.project_id()})


@functools.cache
def firestore() -> Client:
    from google.cloud import firestore as gcf  # noqa: PLC0415

    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415

        client = gcf.Client(project=settings.project_id(), credentials=AnonymousCredentials())
    else:
        client = gcf.Client(project=settings.project_id())
    return metering.instrument(client)  # reads and writes per invocation, in the logs


def auth():
    """firebase_admin.auth bound to the suite's app (honours FIREBASE_AUTH_EMULATOR_HOST)."""
    from firebase_admin import auth as admin_auth  # noqa: PLC0415

    app()
    return admin_auth


def task_queue(function_name: str):
    from firebase_admin import functions as admin_functions  # noqa: PLC0415

    return admin_functions.task_queue(f"locations/{settings.REGION}/functions/{function_name}", app=app())


@functools.cache
def stripe():
    """A StripeClient built on first use: ``stripe`` alone costs ~0.35 s of import."""
    import stripe as stripe_sdk  # noqa: PLC0415

    from flowsuite.payments import config  # noqa: PLC0415

    return stripe_sdk.StripeClient(
        config.STRIPE_SECRET_KEY.value,
        base_addresses={"api": config.api_base()},
        max_network_retries=2,
    )


def push_sender():
    """FCM in production; a recording adapter under the emulators (FCM has none)."""
    from flowsuite.notifications.push import FcmSender, RecordingSender  # noqa: PLC0415

    return RecordingSender(firestore()) if settings.is_emulator() else FcmSender(app())


def reset() -> None:
    """Forget built clients (tests that switch projects)."""
    firestore.cache_clear()
    stripe.cache_clear()
