"""Email over SMTP with the standard library (a real SMTP server in tests: aiosmtpd)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from flowsuite.notifications import config


def build(*, to: str, subject: str, text: str, html: str, message_id_seed: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = config.value(config.MAIL_FROM)
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(idstring=message_id_seed[:40], domain="flowsuite.local")
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


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
        server.send_message(msg)
    return msg["Message-ID"]
