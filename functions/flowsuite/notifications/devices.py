"""A user's push devices (``users/{uid}/fcm_tokens``) as a push reads them: only tokens of
FCM's shape, for the push's audience, at most ``config.PUSH_TOKENS_PER_USER`` (10) a user, their
newest, read a page at a time in document order, so that neither memory nor sends grow with what
one user registers. Broadcasts and targeted pushes (ffpush) and order notifications (service)
read devices here alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from flowsuite.core import settings
from flowsuite.notifications import config


def audience_matches(target: str | None, device_type: str | None) -> bool:
    target = (target or "All").strip().lower()
    return target in ("", "all") or (device_type or "").strip().lower() == target


TOKEN_SHAPE = re.compile(config.FCM_TOKEN_PATTERN)
EMULATOR_TOKEN_PAGE = 7  # under the emulators, small pages: the tests cross page boundaries


def usable_token(value: Any) -> bool:
    """A string of FCM's registration-token shape (``config.FCM_TOKEN_PATTERN``, at most
    ``FCM_TOKEN_MAX`` characters), as the rules and addFcmToken accept it. Pure."""
    return isinstance(value, str) and 0 < len(value) <= config.FCM_TOKEN_MAX and TOKEN_SHAPE.fullmatch(value) is not None


@dataclasses.dataclass(frozen=True)
class TokenRow:
    """One ``fcm_tokens`` document as a push reads it."""

    owner: str  # the document holding its collection (users/{uid}): one user's devices
    token: Any
    device_type: Any = None
    created_at: Any = None


def wanted(rows: Iterable[TokenRow], target_audience: str | None) -> Iterator[TokenRow]:
    """The rows with a usable token for the audience. Pure: a malformed document (a token
    written before the rules checked its shape) is skipped, never sent to FCM."""
    for row in rows:
        device = row.device_type if isinstance(row.device_type, str) else None
        if usable_token(row.token) and audience_matches(target_audience, device):
            yield row


def _age_key(created_at: Any) -> tuple[int, float]:
    return (1, created_at.timestamp()) if isinstance(created_at, dt.datetime) else (0, 0.0)


def newest_per_owner(rows: Iterable[TokenRow], per_owner: int) -> Iterator[list[str]]:
    """Each owner's newest ``per_owner`` distinct tokens (by ``created_at``; a token without one
    counts as the oldest; among equals the first read wins), newest first, one list per owner.
    Pure. ``rows`` come ordered by document path, so each owner's rows arrive together (across
    pages too); only ``per_owner`` of them are held at a time, however many the owner has."""
    owner: str | None = None
    kept: dict[str, tuple[tuple[int, float], int]] = {}
    read = 0
    for row in rows:
        if row.owner != owner:
            if kept:
                yield sorted(kept, key=kept.__getitem__, reverse=True)
            owner, kept = row.owner, {}
        read += 1
        key = (_age_key(row.created_at), -read)
        if row.token in kept:
            kept[row.token] = max(kept[row.token], key)
            continue
        kept[row.token] = key
        if len(kept) > per_owner:
            del kept[min(kept, key=kept.__getitem__)]
    if kept:
        yield sorted(kept, key=kept.__getitem__, reverse=True)


def batches(groups: Iterable[list[str]], size: int) -> Iterator[list[str]]:
    """The groups' tokens in batches of at most ``size``, each token once per batch. Pure."""
    batch: dict[str, None] = {}
    for group in groups:
        for token in group:
            batch[token] = None
            if len(batch) >= size:
                yield list(batch)
                batch = {}
    if batch:
        yield list(batch)


def token_page() -> int:
    return EMULATOR_TOKEN_PAGE if settings.is_emulator() else config.PUSH_TOKEN_PAGE


def row_of(snap) -> TokenRow:
    data = snap.to_dict() or {}
    return TokenRow(owner=snap.reference.path.rsplit("/", 2)[0], token=data.get("fcm_token"),
                    device_type=data.get("device_type"), created_at=data.get("created_at"))


class DeadlinePassedError(Exception):
    """Reading stopped before another page: the push's time (``deadline``) has passed."""


def past(deadline: float | None, now: float) -> bool:
    """Whether a reader with this ``deadline`` (``time.monotonic()`` based; None: no deadline)
    must stop before reading more at ``now``. Pure."""
    return deadline is not None and now >= deadline


def paged(query, page: int, *, deadline: float | None = None) -> Iterator[TokenRow]:
    """Every document of ``query`` in document-path order, ``page`` at a time (never all at once).
    Past ``deadline`` (``time.monotonic()``), it raises ``DeadlinePassedError`` before reading
    another page: one user's thousands of token documents cannot hold a push past its time."""
    query = query.order_by("__name__").limit(page)
    last = None
    while True:
        if past(deadline, time.monotonic()):
            raise DeadlinePassedError
        snaps = list((query if last is None else query.start_after({"__name__": last})).stream())
        yield from (row_of(snap) for snap in snaps)
        if len(snaps) < page:
            return
        last = snaps[-1].reference


def newest_devices(collection, *, per_user: int = config.PUSH_TOKENS_PER_USER) -> list[str]:
    """One user's devices (their ``fcm_tokens`` collection): their newest ``per_user`` usable
    tokens, read a page at a time."""
    for group in newest_per_owner(wanted(paged(collection, token_page()), None), per_user):
        return group
    return []


def surplus(newest_first: Iterable[str], keep: int, registered: str) -> list[str]:
    """The ids of a user's token documents beyond their newest ``keep``, given the ids newest
    first (by ``created_at``). The one just ``registered`` is always kept: an older document
    dated in the future by a device's clock must not push it out. Pure."""
    kept = 1
    extra = []
    for doc_id in newest_first:
        if doc_id == registered:
            continue
        if kept < keep:
            kept += 1
        else:
            extra.append(doc_id)
    return extra
