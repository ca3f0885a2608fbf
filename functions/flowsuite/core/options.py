"""Global options, set once for every function of the suite.

Domains override per function (memory, timeouts, secrets) through the options
they pass to the kernel's decorators, never by repeating the region.
"""

from __future__ import annotations

from firebase_functions import options

from flowsuite.core import settings

_applied = False


def apply() -> None:
    """Sets region, memory and instance limits once (declarative, no I/O)."""
    global _applied
    if _applied:
        return
    options.set_global_options(
        region=settings.REGION,
        memory=options.MemoryOption.MB_256,
        max_instances=20,
        timeout_sec=settings.CALLABLE_TIMEOUT_SECONDS,
    )
    _applied = True


def for_domain(domain: str) -> dict:
    """Options a domain declares for all its functions (``OPTIONS`` in its package)."""
    import importlib  # noqa: PLC0415

    try:
        package = importlib.import_module(f"flowsuite.{domain}")
    except ModuleNotFoundError:
        return {}
    return dict(getattr(package, "OPTIONS", {}))
