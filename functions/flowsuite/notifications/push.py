"""Push: one small port, two adapters.

``FcmSender`` sends through ``firebase_admin.messaging`` (production). FCM has no
emulator, so under the emulators ``RecordingSender`` writes what would have been
sent to ``_push_outbox`` and answers as FCM would, with the SDK's own exception types:
tokens that start with ``invalid`` or ``unregistered`` come back ``UnregisteredError``,
``sender-mismatch`` ``SenderIdMismatchError``, ``bad-token`` FCM's ``InvalidArgumentError`` for a
token that is no registration token (malformed, truncated, made up: "The registration token is
not a valid FCM registration token"), ``bad-argument`` the same error for the message (a
payload one platform refuses) and ``unavailable`` ``UnavailableError`` (transient).
``clients.push_sender()`` picks one; nothing else knows the difference.

Both read FCM's answer for each token through ``account``: a token is dead when FCM says it is
unregistered or belongs to another sender, or answers ``INVALID_ARGUMENT`` saying the token is not
a valid registration token. Any other invalid argument may be the message's (FCM validates each
platform's payload apart: one accepted on Android can be refused for iOS), and any other error is
FCM's (transient, quota, APNs credentials): the token is kept. Both check the message first (``check``): FCM refuses payloads over 4,096 bytes and data
that is not strings, and that refusal must never look like dead tokens.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol

from flowsuite.core import clock, metering
from flowsuite.notifications import config


@dataclasses.dataclass(frozen=True)
class PushMessage:
    title: str
    body: str
    data: dict[str, str]
    image_url: str | None = None
    sound: str | None = None


@dataclasses.dataclass
class PushResult:
    sent: int = 0
    failed: int = 0
    invalid_tokens: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    transient: int = 0  # failures FCM says may succeed later (unavailable, internal, quota)

    def add(self, other: PushResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.invalid_tokens += other.invalid_tokens
        self.errors += other.errors
        self.transient += other.transient


FCM_MAX_PAYLOAD_BYTES = 4096  # FCM's limit for a message's notification + data


class PushMessageError(ValueError):
    """The message cannot be sent as it is (too large, fields of the wrong type): no token is at fault."""


def payload_size(message: PushMessage) -> int:
    """The bytes FCM counts against its 4 KB limit (notification and data, as JSON). Pure."""
    body = {"notification": {"title": message.title, "body": message.body,
                             **({"image": message.image_url} if message.image_url else {})},
            "data": message.data}
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


def check(message: PushMessage) -> None:
    """Refuses what FCM would refuse for the message itself, before any token is tried. Pure."""
    bad = [k for k, v in message.data.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise PushMessageError(f"push data values must be strings: {', '.join(map(str, bad))[:200]}")
    reserved = [k for k in message.data if k in ("from", "notification", "message_type") or k.startswith(("google.", "gcm."))]
    if reserved:
        raise PushMessageError(f"push data uses reserved keys: {', '.join(reserved)}")
    size = payload_size(message)
    if size > FCM_MAX_PAYLOAD_BYTES:
        raise PushMessageError(f"push message is {size} bytes; FCM accepts at most {FCM_MAX_PAYLOAD_BYTES}")


# What FCM says in an INVALID_ARGUMENT about the token itself (not the message).
NOT_A_TOKEN = "not a valid FCM registration token"


def account(total: PushResult, token: str, exc: BaseException | None) -> None:
    """Reads one token's answer from FCM (the SDK's exception types). Unregistered and another
    sender's tokens are dead, and so is one FCM calls no valid registration token; any other
    invalid argument may be the message's, and the token is kept. Pure but for the SDK's
    exception types."""
    from firebase_admin import exceptions, messaging  # noqa: PLC0415

    if exc is None:
        total.sent += 1
        return
    total.failed += 1
    if isinstance(exc, (messaging.UnregisteredError, messaging.SenderIdMismatchError)):
        total.invalid_tokens.append(token)
        return
    if isinstance(exc, exceptions.InvalidArgumentError) and NOT_A_TOKEN in str(exc):
        total.invalid_tokens.append(token)
        return
    if isinstance(exc, (exceptions.UnavailableError, exceptions.InternalError, exceptions.DeadlineExceededError,
                        exceptions.ResourceExhaustedError)):
        total.transient += 1
    total.errors.append(f"{type(exc).__name__}: {exc}"[:200])


class PushSender(Protocol):
    def send(self, tokens: list[str], message: PushMessage) -> PushResult: ...


def chunks(tokens: list[str], size: int = config.FCM_CHUNK) -> list[list[str]]:
    return [tokens[i:i + size] for i in range(0, len(tokens), size)]


class FcmSender:
    def __init__(self, app) -> None:
        self.app = app

    def send(self, tokens: list[str], message: PushMessage) -> PushResult:
        from firebase_admin import messaging  # noqa: PLC0415

        check(message)
        total = PushResult()
        for chunk in chunks(tokens):
            multicast = messaging.MulticastMessage(
                tokens=chunk,
                notification=messaging.Notification(title=message.title, body=message.body,
                                                    image=message.image_url or None),
                data=message.data,
                apns=messaging.APNSConfig(payload=messaging.APNSPayload(
                    aps=messaging.Aps(sound=message.sound or "default"))),
                android=messaging.AndroidConfig(notification=messaging.AndroidNotification(
                    sound=message.sound or "default")),
            )
            answer = messaging.send_each_for_multicast(multicast, app=self.app)
            for token, response in zip(chunk, answer.responses, strict=True):
                account(total, token, None if response.success else response.exception)
        return total


class RecordingSender:
    """Emulator only: records the push instead of sending it."""

    OUTBOX = "_push_outbox"

    def __init__(self, db) -> None:
        self.db = db

    def send(self, tokens: list[str], message: PushMessage) -> PushResult:
        check(message)
        total = PushResult()
        for chunk in chunks(tokens):
            answers = {t: fcm_answer_for(t) for t in chunk}
            valid = [t for t in chunk if answers[t] is None]
            record: dict[str, Any] = {
                "tokens": valid, "rejected_tokens": [t for t in chunk if t not in valid], "title": message.title,
                "body": message.body, "data": message.data, "image_url": message.image_url, "sound": message.sound,
                "time": clock.utcnow(),
            }
            with metering.paused():  # FCM's stand-in: production writes nothing here
                self.db.collection(self.OUTBOX).add(record)
            for token in chunk:
                account(total, token, answers[token])
        return total


def fcm_answer_for(token: str) -> Exception | None:
    """What FCM answers for a token, as the SDK raises it (emulator only; by the token's prefix)."""
    from firebase_admin import exceptions, messaging  # noqa: PLC0415

    if token.startswith(("invalid", "unregistered")):
        return messaging.UnregisteredError("Requested entity was not found.")
    if token.startswith("sender-mismatch"):
        return messaging.SenderIdMismatchError("SenderId mismatch")
    if token.startswith("bad-token"):
        return exceptions.InvalidArgumentError("The registration token is not a valid FCM registration token")
    if token.startswith("bad-argument"):
        return exceptions.InvalidArgumentError("Request contains an invalid argument.")
    if token.startswith("unavailable"):
        return exceptions.UnavailableError("FCM is temporarily unavailable.")
    return None
