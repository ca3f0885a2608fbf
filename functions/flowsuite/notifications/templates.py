"""Message templates per notification type: title, plain text and HTML bodies."""

from __future__ import annotations

import dataclasses
import html
import string

from flowsuite.core.money import format_amount as money  # noqa: F401 - the templates' money format

# Context values a user typed (a display name). An email goes to an address anyone could
# sign up with: text chosen by a stranger, sent from our domain, is phishing. Emails leave
# them out (the inbox and pushes, which only the owner sees, keep them).
USER_SUPPLIED = {"name": "there"}


def for_email(context: dict[str, object]) -> dict[str, object]:
    """The context with every user-supplied value left out. Pure."""
    return {**context, **{k: v for k, v in USER_SUPPLIED.items() if k in context}}


@dataclasses.dataclass(frozen=True)
class Template:
    title: str
    text: str
    channels: tuple[str, ...]

    def render(self, context: dict[str, object]) -> tuple[str, str, str]:
        """(title, text, html): values are escaped in the HTML body."""
        title = string.Template(self.title).safe_substitute(context)
        text = string.Template(self.text).safe_substitute(context)
        escaped = {k: html.escape(str(v)) for k, v in context.items()}
        body = string.Template(html.escape(self.text, quote=False)).safe_substitute(escaped)
        page = (f"<!doctype html><html><body><h1>{html.escape(title)}</h1>"
                f"<p>{body.replace(chr(10), '<br>')}</p></body></html>")
        return title, text, page


TEMPLATES: dict[str, Template] = {
    "welcome": Template(
        "Welcome to $app",
        "Hi $name, your $app account is ready.",
        ("inbox", "email"),
    ),
    "order_paid": Template(
        "Receipt for order $order_id",
        "Thank you! We received $amount for order $order_id.",
        ("inbox", "push", "email"),
    ),
    "order_cancelled": Template(
        "Order $order_id cancelled",
        "Your order $order_id was cancelled ($reason).",
        ("inbox", "push"),
    ),
    "payment_failed": Template(
        "Payment failed",
        "The payment for order $order_id did not go through ($reason). Your items are still reserved: "
        "try another card before the order expires.",
        ("inbox", "push"),
    ),
    "payment_refunded": Template(
        "Refund for order $order_id",
        "We refunded $amount for order $order_id. $why",
        ("inbox", "push", "email"),
    ),
    "dispute_update": Template(
        "Dispute $status on order $order_id",
        "A dispute of $amount on order $order_id (payment $payment_id) is $status (reason: $reason). "
        "Respond in the Stripe Dashboard.",
        ("inbox", "email"),
    ),
    "refund_failed": Template(
        "Refund failed on order $order_id",
        "A refund of $amount on order $order_id (payment $payment_id, refund $refund_id) is $status at Stripe "
        "($reason): the customer has not got the money back, and Stripe returned it to your balance. "
        "Refunded of the payment now: $refunded. It is not retried automatically; the order and the payment "
        "are flagged for review. Either replay the refund's dead letter in the console to refund again (a new "
        "refund at Stripe), or return the money another way and leave the dead letter. If no dead letter names "
        "payment $payment_id (the refund failed after it was confirmed), refund again in the Stripe Dashboard.",
        ("inbox", "email"),
    ),
    "order_review": Template(
        "Order $order_id needs review",
        "The customer of order $order_id ($amount, $status) deleted their account. The order stays $status "
        "and keeps its amounts for accounting: fulfil it, or cancel it to refund the payment.",
        ("inbox", "email"),
    ),
}
