"""Email over SMTP with the standard library (a real SMTP server in tests: aiosmtpd)."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage

from flowsuite.notifications import config


def build(*, to: str, subject: str, text: str, html: str, message_id_seed: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = config.value(config.MAIL_FROM)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id(message_id_seed)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def message_id(seed: str) -> str:
    """The same notification always has the same Message-ID, so a retry is recognisable as the
    same message (by the receiving server, by the user's mail client). Pure."""
    return f"<{hashlib.sha256(seed.encode()).hexdigest()[:32]}@flowsuite.local>"


def enabled() -> bool:
    """SMTP_HOST unset means email is off: an outcome, not a failure."""
    return bool(config.value(config.SMTP_HOST))


class PermanentRejectionError(Exception):
    """The server refused the address for good (a 5xx answer): retrying cannot help."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}"[:300])
        self.code = code
        self.reason = reason


def permanent(exc: BaseException) -> PermanentRejectionError | None:
    """A 5xx answer from smtplib's exceptions, read as a permanent rejection; 4xx and
    connection errors are transient (None). Pure."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        answers = list(exc.recipients.values())
        if answers and all(500 <= int(code) < 600 for code, _ in answers):
            code, text = answers[0]
            return PermanentRejectionError(int(code), text.decode(errors="replace") if isinstance(text, bytes) else str(text))
        return None
    code = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPResponseException) and isinstance(code, int) and 500 <= code < 600 and not isinstance(
            exc, (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused)):  # our own setup, not the address
        error = exc.smtp_error
        return PermanentRejectionError(code, error.decode(errors="replace") if isinstance(error, bytes) else str(error))
    return None


def send(msg: EmailMessage) -> str:
    host = config.value(config.SMTP_HOST)
    if not host:
        raise RuntimeError("SMTP_HOST is not set: email is disabled")
    port = int(config.value(config.SMTP_PORT))
    security = config.value(config.SMTP_SECURITY).lower()
    user = config.value(config.SMTP_USER)
    if security == "ssl":
        server = smtplib.SMTP_SSL(host, port, timeout=20, context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(host, port, timeout=20)
    with server:
        if security == "starttls":
            server.starttls(context=ssl.create_default_context())
        if user:
            server.login(user, config.SMTP_PASSWORD.value)
        try:
            server.send_message(msg)
        except smtplib.SMTPException as exc:
            rejection = permanent(exc)
            if rejection is not None:
                raise rejection from exc
            raise
    return msg["Message-ID"]
