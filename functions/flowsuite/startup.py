"""An instance's cold start: the cyclic garbage collector pauses while ``main.py`` imports.

Importing the SDK, pydantic and a domain allocates hundreds of thousands of objects (modules,
classes, functions, descriptors) that live as long as the instance, and the collector would
walk them again and again while they are built (about 200 collections while an orders_place
instance imports; see the README's performance table for what pausing saves). So ``main.py``
calls ``begin`` before its first import and ``done`` after its last: ``done`` freezes what the
import built (``gc.freeze``: later collections skip it) and turns the collector back on. The
import itself leaves little cyclic garbage (about 800 objects), which stays frozen with the rest.

Nothing else changes: no I/O, no client, no setting read. An import of ``main`` that fails
leaves the collector paused: a served instance exits on it; a test process that imports
``main`` fails there and goes on with the collector off.
"""

from __future__ import annotations

import gc

_was_enabled: list[bool] = []  # begin's calls not ended yet, each with whether the collector was on


def begin() -> None:
    """Pauses the cyclic collector for an import (``main.py``'s first statement)."""
    _was_enabled.append(gc.isenabled())
    gc.disable()


def done() -> None:
    """Freezes what the import built and turns the collector back on if ``begin`` found it on."""
    gc.freeze()
    was_enabled = _was_enabled.pop() if _was_enabled else True
    if was_enabled:
        gc.enable()
