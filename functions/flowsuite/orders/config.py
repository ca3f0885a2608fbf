"""Orders' parameters."""

from __future__ import annotations

from firebase_functions import params

PAYMENT_TIMEOUT_MINUTES = params.IntParam(
    "ORDER_PAYMENT_TIMEOUT_MINUTES", default=30,
    description="How long an unpaid order holds its stock: after this many minutes it is cancelled and the stock released.",
)
# No stock hoarding: what one user's unpaid orders (pending_payment or cancelling) may hold at once.
MAX_UNPAID_ORDERS = params.IntParam(
    "ORDER_MAX_UNPAID_ORDERS", default=3,
    description="Unpaid orders (pending payment or being cancelled) one user may hold at once.",
)
MAX_UNPAID_UNITS = params.IntParam(
    "ORDER_MAX_UNPAID_UNITS", default=50,
    description="Units (the sum of quantities) one user's unpaid orders may hold at once.",
)
MAX_LINES = 50
# A hot product's stock is split across at most this many shards (products/{id}/stock_shards/{k}).
MAX_STOCK_SHARDS = 100
# Times an order is placed again when stock it read (a product or a shard) was taken meanwhile
# (then `aborted`).
STOCK_ATTEMPTS = 8
MAX_QUANTITY = 99
CURRENCIES = ("usd", "eur", "gbp", "chf", "cad", "aud", "jpy", "sek", "nok", "dkk")
