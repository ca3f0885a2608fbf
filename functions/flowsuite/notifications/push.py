"""Push: one small port, two adapters.

``FcmSender`` sends through ``firebase_admin.messaging`` (production). FCM has no
emulator, so under the emulators ``RecordingSender`` writes what would have been
sent to ``_push_outbox`` and answers as FCM would: tokens that start with
``invalid`` or ``unregistered`` come back unregistered. ``clients.push_sender()``
picks one; nothing else knows the difference.
"""

from __future__ import annotations

import dataclasses
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

    def add(self, other: PushResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.invalid_tokens += other.invalid_tokens
        self.errors += other.errors


class PushSender(Protocol):
    def send(self, tokens: list[str], message: PushMessage) -> PushResult: ...


def chunks(tokens: list[str], size: int = config.FCM_CHUNK) -> list[list[str]]:
    return [tokens[i:i + size] for i in range(0, len(tokens), size)]


class FcmSender:
    def __init__(self, app) -> None:
        self.app = app

    def send(self, tokens: list[str], message: PushMessage) -> PushResult:
        from firebase_admin import messaging  # noqa: PLC0415

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
                if response.success:
                    total.sent += 1
                    continue
                total.failed += 1
                if isinstance(response.exception, (messaging.UnregisteredError,)) or (
                    type(response.exception).__name__ in ("InvalidArgumentError", "SenderIdMismatchError")
                ):
                    total.invalid_tokens.append(token)
                else:
                    total.errors.append(str(response.exception)[:200])
        return total


class RecordingSender:
    """Emulator only: records the push instead of sending it."""

    OUTBOX = "_push_outbox"

    def __init__(self, db) -> None:
        self.db = db

    def send(self, tokens: list[str], message: PushMessage) -> PushResult:
        total = PushResult()
        for chunk in chunks(tokens):
            valid = [t for t in chunk if not t.startswith(("invalid", "unregistered"))]
            invalid = [t for t in chunk if t not in valid]
            record: dict[str, Any] = {
                "tokens": valid, "rejected_tokens": invalid, "title": message.title, "body": message.body,
                "data": message.data, "image_url": message.image_url, "sound": message.sound,
                "time": clock.utcnow(),
            }
            with metering.paused():  # FCM's stand-in: production writes nothing here
                self.db.collection(self.OUTBOX).add(record)
            total.add(PushResult(sent=len(valid), failed=len(invalid), invalid_tokens=invalid))
        return total
