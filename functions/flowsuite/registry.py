"""Which domains an instance imports.

Every instance of every function imports ``main.py``. When the Functions
Framework names the function an instance serves (``FUNCTION_TARGET``, set in
production and by the emulator), only that function's domain is imported, so
one domain's heavy dependencies (Stripe) never slow another's cold start.
Discovery (deploy, emulator load) runs without it and imports everything.

Function names start with their domain (``orders_place``); names that a
FlutterFlow convention fixes are listed in ``ALIASES``. The ops domain serves
the bus's redelivery and sweep, which need every subscriber, so it loads all.
"""

from __future__ import annotations

import os

DOMAINS = (
    "identity", "orders", "payments", "notifications", "ops",
    # Domains added by `make domain name=...` (devtools/domain.py); `make undomain` takes them out.
    # >>> generated domains
    # <<< generated domains
)
ALIASES = {
    "addFcmToken": "notifications",
    "initStripePayment": "payments",
    # Task queue functions: Cloud Tasks queue ids refuse underscores.
    "opsRedeliver": "ops",
    "notificationsSendScheduledPush": "notifications",
}
LOADS_EVERYTHING = {"ops"}


def domain_for(target: str) -> str | None:
    """The domain serving a function: an alias, else the longest domain its name starts with
    (``gift_cards_redeem`` -> ``gift_cards``)."""
    if target in ALIASES:
        return ALIASES[target]
    matches = [d for d in DOMAINS if target.startswith(f"{d}_")]
    return max(matches, key=len) if matches else None


def wanted(domain: str, target: str | None = None) -> bool:
    """Should ``main.py`` import this domain's functions in this instance?"""
    target = os.environ.get("FUNCTION_TARGET") if target is None else target
    if not target:
        return True
    serving = domain_for(target)
    if serving is None or serving in LOADS_EVERYTHING:
        return True
    return domain == serving
