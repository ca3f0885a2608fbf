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
