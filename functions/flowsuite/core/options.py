"""Options: set once for the suite, once per domain, and applied to every function.

Every function of the suite is built through ``trigger``, whatever SDK decorator
builds it, so a domain's declaration reaches all its functions:

    @options.trigger(https_fn.on_request, secrets=config.SECRETS)
    def payments_stripe_webhook(req): ...

    @options.trigger(scheduler_fn.on_schedule, schedule="every 30 minutes")
    def orders_expire_unpaid(event): ...

The kernel's own decorators (``callable_function``, ``bus.subscriber``) use it
too. The options a function gets are, in order: the suite's (``GLOBAL``: region,
memory, instances, timeout), its domain's (declared in the domain's package with
``OPTIONS = options.declare(__name__, ...)``), and its own (secrets, a schedule, a
document path...). A unit test compares every endpoint of the SDK's manifest with
that declaration. The package of a module is imported before the module, so a
domain's declaration is known before any of its functions is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from firebase_functions import options

from flowsuite.core import settings

# The suite's options: one region (FlutterFlow's default), modest memory, and instances
# from a param (FUNCTIONS_MAX_INSTANCES, default 20); checkout domains declare their own
# (docs/production.md, "Capacity plan").
GLOBAL: dict[str, Any] = {
    "region": settings.REGION,
    "memory": options.MemoryOption.MB_256,
    "max_instances": settings.MAX_INSTANCES,
    "timeout_sec": settings.CALLABLE_TIMEOUT_SECONDS,
}

# What each domain declared for all its functions (``declare``).
DECLARED: dict[str, dict[str, Any]] = {}
# Every function built through ``trigger``: name -> its domain and the options it was given.
APPLIED: dict[str, dict[str, Any]] = {}

_applied = False


def apply() -> None:
    """Sets the suite's global options once (declarative, no I/O)."""
    global _applied
    if _applied:
        return
    options.set_global_options(**GLOBAL)
    _applied = True


def domain_of(module: str) -> str:
    """The domain a module belongs to: ``flowsuite.orders.functions`` -> ``orders``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "flowsuite" else parts[0]


def declare(package: str, **domain_options: Any) -> dict[str, Any]:
    """A domain's options for all its functions, declared in its package:
    ``OPTIONS = options.declare(__name__, memory=MemoryOption.MB_512)``."""
    DECLARED[domain_of(package)] = dict(domain_options)
    return dict(domain_options)


def for_domain(domain: str) -> dict[str, Any]:
    """Options a domain declared for all its functions (none: the suite's)."""
    return dict(DECLARED.get(domain, {}))


def trigger(decorator: Callable[..., Callable], /, *, domain: str | None = None, **own: Any) -> Callable:
    """Builds a function with an SDK ``decorator`` under the suite's, its domain's and its own options.

    ``domain`` defaults to the domain of the decorated function's module; the function's
    own options win over its domain's, which win over the suite's."""

    def decorate(fn: Callable) -> Callable:
        apply()
        name = fn.__name__
        owner = domain or domain_of(fn.__module__)
        merged = {**for_domain(owner), **own}
        check_timeout(name, merged.get("timeout_sec", GLOBAL["timeout_sec"]))
        APPLIED[name] = {"domain": owner, "own": dict(own), "options": merged}
        return decorator(**merged)(fn)

    return decorate


def check_timeout(name: str, timeout_sec: Any) -> None:
    """Refuses a function timeout longer than ``settings.MAX_FUNCTION_TIMEOUT_SECONDS``: every
    lease (``core/claims.py``) is that ceiling plus a margin, so an attempt still running inside
    its timeout never loses its lease to a second attempt. Raise the ceiling, not just a timeout."""
    if isinstance(timeout_sec, int | float) and timeout_sec > settings.MAX_FUNCTION_TIMEOUT_SECONDS:
        raise ValueError(
            f"{name}: timeout_sec={timeout_sec} exceeds settings.MAX_FUNCTION_TIMEOUT_SECONDS "
            f"({settings.MAX_FUNCTION_TIMEOUT_SECONDS}); leases would expire while it still runs")


def timeout_of(name: str) -> int:
    """The timeout (seconds) a function built through ``trigger`` was given; the suite's by default."""
    timeout = APPLIED.get(name, {}).get("options", {}).get("timeout_sec", GLOBAL["timeout_sec"])
    # a timeout set by a param is known only at deploy: assume the ceiling check_timeout enforces
    return int(timeout) if isinstance(timeout, int | float) else settings.MAX_FUNCTION_TIMEOUT_SECONDS
