"""The suite's one clock: timezone-aware UTC, as Firestore stores timestamps.

``utcnow`` is the machine's real clock. Code that judges time on behalf of someone
else (a sweep judging leases "as of" its start, a test moving a sweep ahead) takes
a ``now`` argument; whatever is *started* (a lease, a TTL) starts at ``utcnow``,
never at a clock a caller passed in or an event's time.
"""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_datetime(value):
    """A Firestore time as an aware datetime: a snapshot's ``create_time`` or ``update_time`` may
    be a protobuf ``Timestamp`` (a collection-group query's are) rather than a datetime, and the
    two do not compare. Anything else is returned as it is. Pure."""
    to_datetime = getattr(value, "ToDatetime", None)
    return to_datetime(tzinfo=dt.UTC) if callable(to_datetime) else value
