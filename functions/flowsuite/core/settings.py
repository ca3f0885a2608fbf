"""Typed settings: every parameter the suite reads, declared once.

Parameters are the Firebase SDK's own (`StringParam`, `IntParam`, `SecretParam`),
so `firebase deploy` asks for them and the emulator reads them from
``functions/.env.local``. Declaring a parameter does no I/O; reading ``.value``
reads the environment at call time.
"""

from __future__ import annotations

import os

from firebase_functions import params

# Where every function runs. One place: FlutterFlow's default region, so the app
# needs no `instanceFor(region: ...)`. Change it here, not on decorators.
REGION = "us-central1"

# Instance limits (docs/production.md, "Capacity plan"): params, so a larger app raises them
# at deploy (functions/.env.<project>) without a code change. Every instance serves one
# request at a time (256 MiB gets a fraction of a CPU, where Cloud Run allows concurrency 1),
# so a function's max instances is the number of requests it serves at once.
MAX_INSTANCES = params.IntParam(
    "FUNCTIONS_MAX_INSTANCES", default=20,
    description="Instances each function without a limit of its own may scale to (one request per instance).",
)
ORDERS_MAX_INSTANCES = params.IntParam(
    "ORDERS_MAX_INSTANCES", default=100,
    description="Instances each orders function (orders_place: the checkout's first step) may scale to.",
)
PAYMENTS_MAX_INSTANCES = params.IntParam(
    "PAYMENTS_MAX_INSTANCES", default=50,
    description="Instances each payments function (create_intent, the Stripe webhook) may scale to.",
)
NOTIFICATIONS_MAX_INSTANCES = params.IntParam(
    "NOTIFICATIONS_MAX_INSTANCES", default=20,
    description="Instances each notifications function may scale to (SMTP and FCM send from them).",
)
# Warm instances for the checkout's steps (orders_place, payments_create_intent, the Stripe
# webhook): a buyer after a deploy or a quiet spell meets a warm instance, not a cold start
# (about 1.2-1.4 s on a 2-core machine, README "Performance"). Billed while idle; 0 by default.
CHECKOUT_MIN_INSTANCES = params.IntParam(
    "CHECKOUT_MIN_INSTANCES", default=0,
    description="Warm instances kept for each checkout step (orders_place, payments_create_intent, "
                "the Stripe webhook), billed while idle; 0 scales them to zero.",
)

# Event bus reliability.
BUS_MAX_ATTEMPTS = params.IntParam(
    "BUS_MAX_ATTEMPTS", default=8, description="Delivery attempts before an event becomes a dead letter."
)
BUS_RETRY_BASE_SECONDS = params.IntParam(
    "BUS_RETRY_BASE_SECONDS", default=30, description="First retry delay; doubles on every attempt."
)
BUS_MAX_RETRY_HOURS = params.IntParam(
    "BUS_MAX_RETRY_HOURS", default=72,
    description="How long a failing delivery may keep being retried (a 'retry later' included) before it "
                "becomes a dead letter.",
)
ERASURE_MAX_WAIT_HOURS = params.IntParam(
    "ERASURE_MAX_WAIT_HOURS", default=24,
    description="How long the last eraser of a deleted account waits for the other domains' erasers.",
)
# Email domains refused, read by two domains: identity refuses them at sign-up and at every
# sign-in (against the email Auth holds then: an address changed or linked since), and
# notifications never sends email to them (accounts no blocking function saw).
BLOCKED_EMAIL_DOMAINS = params.StringParam(
    "BLOCKED_EMAIL_DOMAINS", default="",
    description="Comma-separated email domains refused at sign-up and sign-in, and never sent email.",
)
# Observability: spans sent to Cloud Trace (needs opentelemetry-exporter-gcp-trace; docs/production.md).
TRACE_EXPORT = params.BoolParam(
    "TRACE_EXPORT", default=False,
    description="Export spans (callables, transactions, Stripe calls, deliveries) to Cloud Trace.",
)
# Leases (core/claims.py: deliveries, effects, idempotency keys). A lease must outlast every
# attempt that may still run under it, or a second attempt starts while the first is alive: no
# function may run longer than MAX_FUNCTION_TIMEOUT_SECONDS (options.trigger refuses a longer
# timeout, and tests/unit/test_manifest.py checks every deployed function's), and a lease adds
# LEASE_MARGIN_SECONDS for the platform's stop after a timeout and clock skew between instances.
# Leases start at the real clock (clock.utcnow), never at a clock a caller passes in.
CALLABLE_TIMEOUT_SECONDS = 60  # the suite's default function timeout (options.GLOBAL)
MAX_FUNCTION_TIMEOUT_SECONDS = 120  # the longest any function declares (notifications: SMTP can be slow)
LEASE_MARGIN_SECONDS = 60
LEASE_SECONDS = MAX_FUNCTION_TIMEOUT_SECONDS + LEASE_MARGIN_SECONDS
BUS_LEASE_SECONDS = LEASE_SECONDS  # a leased delivery still processing after this is stalled: the sweep takes it over
BUS_LOST_AFTER_SECONDS = 120  # an event with no delivery record after this is considered lost
BUS_LOST_WINDOW_HOURS = 48  # the sweep looks for lost events this far back (newest first, from a cursor)
EVENT_TTL_DAYS = 30  # events carry expires_at (a TTL policy in firestore.indexes.json)
IDEMPOTENCY_TTL_HOURS = 24


def is_emulator() -> bool:
    return os.environ.get("FUNCTIONS_EMULATOR") == "true" or bool(os.environ.get("FIRESTORE_EMULATOR_HOST"))


def faults_enabled() -> bool:
    """Fault injection (``core/faults.py``): under the emulators only, unless
    ``FLOWSUITE_FAULTS=off`` (the cold-request benchmark's instances run as production does)."""
    return is_emulator() and os.environ.get("FLOWSUITE_FAULTS", "on") != "off"


def project_id() -> str:
    for var in ("GCLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        if os.environ.get(var):
            return os.environ[var]
    config = os.environ.get("FIREBASE_CONFIG", "")
    if config.startswith("{"):
        import json  # noqa: PLC0415

        return json.loads(config).get("projectId", "demo-flowsuite")
    return "demo-flowsuite"


def csv_value(param: params.StringParam) -> frozenset[str]:
    """A comma-separated parameter as a set of lower-cased, stripped entries."""
    raw = os.environ.get(param.name, param.default or "")
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def blocked_email_domain(email: str | None) -> str | None:
    """The domain of ``email`` when BLOCKED_EMAIL_DOMAINS lists it, else None."""
    domain = email.strip().lower().rsplit("@", 1)[1] if email and "@" in email else None
    return domain if domain and domain in csv_value(BLOCKED_EMAIL_DOMAINS) else None


def int_value(param: params.IntParam) -> int:
    """A parameter's value, falling back to its default outside a deployment."""
    raw = os.environ.get(param.name)
    if raw is None or raw == "":
        return int(param.default)
    return int(raw)
