"""Money rules every domain shares: amounts are integers in the currency's smallest unit.

Stripe refuses a charge below its minimum for the currency or above eight
digits (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts);
an order outside those limits could hold stock but never be paid, so it is
refused when it is placed.
"""

from __future__ import annotations

# Stripe's minimum charge per presentment currency, in minor units (JPY is zero-decimal).
MIN_CHARGE: dict[str, int] = {
    "usd": 50, "eur": 50, "gbp": 30, "chf": 50, "cad": 50, "aud": 50, "jpy": 50, "sek": 300, "nok": 300, "dkk": 250,
}
MAX_CHARGE = 99_999_999  # "The amount value supports up to eight digits"
ZERO_DECIMAL = frozenset({"jpy", "krw", "vnd", "clp"})


def format_amount(amount: int, currency: str) -> str:
    if currency.lower() in ZERO_DECIMAL:
        return f"{amount} {currency.upper()}"
    return f"{amount / 100:.2f} {currency.upper()}"


def charge_limit_error(total: int, currency: str) -> str | None:
    """Why Stripe would refuse to charge ``total``, or None when it can. Pure."""
    minimum = MIN_CHARGE.get(currency.lower(), 50)
    if total < minimum:
        return f"the total {format_amount(total, currency)} is below the minimum charge of " \
               f"{format_amount(minimum, currency)}"
    if total > MAX_CHARGE:
        return f"the total {format_amount(total, currency)} is above the maximum charge of " \
               f"{format_amount(MAX_CHARGE, currency)}"
    return None
