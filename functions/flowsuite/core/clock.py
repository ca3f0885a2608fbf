"""The suite's one clock: timezone-aware UTC, as Firestore stores timestamps."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
