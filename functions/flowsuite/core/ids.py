"""Ids derived from other ids."""

from __future__ import annotations

import hashlib


def person_key(uid: str) -> str:
    """Names a person in a record id without holding the uid: stable (so a second
    record for the same person collides) and opaque (so erasure leaves no uid in ids)."""
    return hashlib.sha256(f"person:{uid}".encode()).hexdigest()[:32]
