"""Every Firestore query that needs more than an automatic single-field index, in one place.

The emulator does not enforce composite indexes and production does: a query
missing from ``firestore.indexes.json`` works locally and fails after deploy. A
test checks each declaration here against that file, and the TTL policies too.
"""

from __future__ import annotations

import dataclasses

ASC, DESC = "ASCENDING", "DESCENDING"


@dataclasses.dataclass(frozen=True)
class Index:
    collection: str
    fields: tuple[tuple[str, str], ...]
    used_by: str
    scope: str = "COLLECTION"


@dataclasses.dataclass(frozen=True)
class SingleField:
    """A single-field index the automatic ones do not cover (collection-group queries)."""

    collection: str
    field: str
    used_by: str
    scope: str = "COLLECTION_GROUP"


@dataclasses.dataclass(frozen=True)
class Ttl:
    collection: str
    field: str
    why: str


COMPOSITE = (
    Index("deliveries", (("status", ASC), ("next_attempt_at", ASC)), "core.bus.sweep (due retries)"),
    Index("deliveries", (("status", ASC), ("lease_until", ASC)), "core.bus.sweep (stalled deliveries)"),
    Index("deliveries", (("status", ASC), ("event_time", ASC)), "core.bus.recover.oldest_pending_age (the sweep's metric)"),
    Index("dead_letters", (("status", ASC), ("created_time", DESC)), "ops.service.list_dead_letters"),
    Index("dead_letters", (("status", ASC), ("subscriber", ASC), ("created_time", DESC)),
          "ops.service.list_dead_letters (by subscriber)"),
    Index("orders", (("status", ASC), ("expires_at", ASC)), "orders.service.expire_unpaid"),
    # The FlutterFlow app's Backend Queries: my orders / payments, newest first.
    Index("orders", (("user_ref", ASC), ("created_time", DESC)), "app: orders of currentUserReference"),
    Index("orders", (("uid", ASC), ("created_time", DESC)), "app: orders of the signed-in uid"),
    Index("payments", (("user_ref", ASC), ("created_time", DESC)), "app: payments of currentUserReference"),
    # The ops console.
    Index("events", (("type", ASC), ("time", DESC)), "console: events of one type, newest first", "COLLECTION_GROUP"),
    # The app's Backend Queries of domains added by `make domain` (devtools/domain.py).
    # >>> generated domains
    # <<< generated domains
)

SINGLE_FIELD = (
    SingleField("events", "time", "console: all events, newest first (a collection-group order); ops.metrics"),
    SingleField("fcm_tokens", "fcm_token", "notifications.service (addFcmToken, token pruning)"),
    SingleField("events", "correlation_id", "console: trace by correlation id"),
    SingleField("events", "id", "console: an event by id"),
    SingleField("events", "data.uid", "ops.service.erase (redact a deleted user's events)"),
)

TTL = (
    Ttl("idempotency_records", "expires_at", "a callable's stored answer is kept 24 h"),
    Ttl("effects", "expires_at", "records of Stripe/FCM/SMTP effects are kept 30 days"),
    Ttl("deliveries", "expires_at", "processed-event marks are kept 30 days"),
    Ttl("events", "expires_at", "events are kept 30 days (settings.EVENT_TTL_DAYS)"),
)
