"""Orders' parameters."""

from __future__ import annotations

from firebase_functions import params

PAYMENT_TIMEOUT_MINUTES = params.IntParam(
    "ORDER_PAYMENT_TIMEOUT_MINUTES", default=30,
    description="A pending order unpaid after this many minutes is cancelled and its stock released.",
)
MAX_LINES = 50
MAX_QUANTITY = 99
CURRENCIES = ("usd", "eur", "gbp", "chf", "cad", "aud", "jpy", "sek", "nok", "dkk")
