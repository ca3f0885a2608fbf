"""The local SMTP sink: aiosmtpd's Maildir handler, plus the permanent rejections real
servers answer, so the suite's reading of them is tested against a real SMTP exchange.

A recipient at ``REJECT_DOMAIN`` is refused at RCPT with ``550 5.1.1`` (no such mailbox),
as a receiving server does for an address that does not exist; every other message lands
in the Maildir.

    python -m aiosmtpd -n -l 127.0.0.1:8025 -c devtools.smtp_sink.RejectingMailbox <maildir>
"""

from __future__ import annotations

from aiosmtpd.handlers import Mailbox

REJECT_DOMAIN = "rejects.flowsuite.test"
REJECTION = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"


def rejects(address: str) -> bool:
    return address.lower().rstrip(">").endswith("@" + REJECT_DOMAIN)


class RejectingMailbox(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's hook
        if rejects(address):
            return REJECTION.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"
