"""Which domains an instance imports.

Every instance of every function imports ``main.py``. When the Functions
Framework names the function an instance serves (``FUNCTION_TARGET``, set in
production and by the emulator), only that function's domain is imported, so
one domain's heavy dependencies (Stripe) never slow another's cold start.
Discovery (deploy, emulator load) runs without it and imports everything.

Function names start with their domain (``orders_place``); names that a
FlutterFlow convention fixes are listed in ``ALIASES``. The functions that act
for every domain (the bus's redelivery and sweep, dead-letter replay, metrics,
health, the last eraser) load the other domains when they first need them
(``load_everything``, through ``bus.all_subscribers`` and ``erasure.all_erasers``),
so an instance serving a plain ops function (ping, health) loads ops alone, one
serving a probe's subscriber ops' triggers alone, and none of them can act on a
partial list of subscribers or erasers.

A domain's ``functions`` module imports what all its functions need (their request
models, the bus, the events they subscribe to). The functions whose cold start
matters most have a module of their own (``OWN_MODULES``), which their domain's
``functions`` module re-exports: an instance serving one imports that module alone.
A domain's document triggers (``<domain>_on_*``: its bus subscribers, its eraser,
its other Firestore triggers) live in its ``triggers`` module, which likewise serves
an instance of one of them alone, without the callables' request models and
machinery (``own_module``); a domain without one serves them from ``functions``.
"""

from __future__ import annotations

import importlib
import importlib.util
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
# Functions served from a module of their own (``own_module``; main.py imports it alone).
OWN_MODULES = {
    "orders_place": "flowsuite.orders.place",  # the checkout's first step
    "payments_stripe_webhook": "flowsuite.payments.webhook",  # every Stripe event
}


def domain_for(target: str) -> str | None:
    """The domain serving a function: an alias, else the longest domain its name starts with
    (``gift_cards_redeem`` -> ``gift_cards``)."""
    if target in ALIASES:
        return ALIASES[target]
    matches = [d for d in DOMAINS if target.startswith(f"{d}_")]
    return max(matches, key=len) if matches else None


TRIGGERS_MODULE = "flowsuite.{domain}.triggers"


def own_module(target: str | None = None) -> str | None:
    """The module that alone serves this instance's function: its own (``OWN_MODULES``), or for a
    document trigger (``<domain>_on_*``) its domain's ``triggers`` module, if the domain has one.
    None: ``main.py`` imports by domain (``wanted``)."""
    target = os.environ.get("FUNCTION_TARGET") if target is None else target
    if not target:
        return None
    if target in OWN_MODULES:
        return OWN_MODULES[target]
    domain = domain_for(target)
    if domain is None or not target.startswith(f"{domain}_on_"):
        return None
    module = TRIGGERS_MODULE.format(domain=domain)
    try:
        return module if importlib.util.find_spec(module) is not None else None
    except ModuleNotFoundError:  # a domain listed without its package
        return None


def serve_alone(namespace: dict, target: str | None = None) -> bool:
    """Puts the functions of the module serving this instance alone (``own_module``) into
    ``namespace`` (``main.py``'s). False if there is none: ``main.py`` then imports by domain."""
    target = os.environ.get("FUNCTION_TARGET") if target is None else target
    module = own_module(target)
    if module is None:
        return False
    loaded = importlib.import_module(module)
    if target not in loaded.__all__:  # an instance that cannot serve its function must not start
        raise ImportError(f"{target} is served from {module} (registry.own_module), which does not export it: "
                          f"declare it there and list it in its __all__")
    for name in loaded.__all__:
        namespace[name] = getattr(loaded, name)
    return True


def wanted(domain: str, target: str | None = None) -> bool:
    """Should ``main.py`` import this domain's functions in this instance?"""
    target = os.environ.get("FUNCTION_TARGET") if target is None else target
    if not target:
        return True
    if own_module(target) is not None:  # that module serves it alone (``serve_alone``)
        return False
    served = domain_for(target)
    return served is None or domain == served


def load_everything() -> None:
    """Imports every domain's functions, which registers every subscriber and eraser (a
    no-op where ``main.py`` imported them all: deploy, discovery, an unknown target)."""
    for domain in DOMAINS:
        importlib.import_module(f"flowsuite.{domain}.functions")
