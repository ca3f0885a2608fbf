"""The one place that builds clients: lazily, on first use, emulator-aware.

Nothing here runs at import time. Under the emulators the Firestore client is
built straight from ``google.cloud.firestore`` because ``firebase_admin``'s
helper asks for Google credentials that a ``demo-`` project never has.

The kernel builds the clients every domain uses (Firestore, Auth, Cloud Tasks).
A client only one domain uses is that domain's to build: the domain registers a
factory when its package is imported (``register("stripe", ...)`` in
``flowsuite.payments``, ``register("push_sender", ...)`` in
``flowsuite.notifications``), and ``client(name)`` builds it on first use. The
kernel imports no domain.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowsuite.core import metering, settings, tracing

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
    tracing.instrument_firestore(client)  # a span per transaction
    return metering.instrument(client)  # reads and writes per invocation, in the logs


def auth():
    """firebase_admin.auth bound to the suite's app (honours FIREBASE_AUTH_EMULATOR_HOST)."""
    from firebase_admin import auth as admin_auth  # noqa: PLC0415

    app()
    return admin_auth


def task_queue(function_name: str):
    from firebase_admin import functions as admin_functions  # noqa: PLC0415

    return admin_functions.task_queue(f"locations/{settings.REGION}/functions/{function_name}", app=app())


# ---- clients the domains register ------------------------------------------------

_FACTORIES: dict[str, tuple[Callable[[], Any], bool]] = {}
_BUILT: dict[str, Any] = {}


def register(name: str, factory: Callable[[], Any], *, cache: bool = True) -> None:
    """Declares how a domain's client is built (no I/O; nothing is built here).
    ``cache``: build it once per instance (else on every ``client(name)``)."""
    _FACTORIES[name] = (factory, cache)
    _BUILT.pop(name, None)


def client(name: str) -> Any:
    """The client a domain registered under ``name``, built on first use."""
    try:
        factory, cache = _FACTORIES[name]
    except KeyError:
        raise LookupError(f"no client {name!r} is registered: import the domain that provides it") from None
    if not cache:
        return factory()
    if name not in _BUILT:
        _BUILT[name] = factory()
    return _BUILT[name]


def stripe():
    """The StripeClient (registered by ``flowsuite.payments``)."""
    return client("stripe")


def push_sender():
    """FCM in production, a recording adapter under the emulators (registered by ``flowsuite.notifications``)."""
    return client("push_sender")


def reset() -> None:
    """Forget built clients (tests that switch projects)."""
    firestore.cache_clear()
    _BUILT.clear()
