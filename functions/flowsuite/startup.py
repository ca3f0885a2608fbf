"""An instance's cold start: the cyclic garbage collector pauses while ``main.py`` imports.

Importing the SDK, pydantic and a domain allocates hundreds of thousands of objects (modules,
classes, functions, descriptors) that live as long as the instance, and the collector would
walk them again and again while they are built (about 5% of a bare SDK function's import and 10% of an instance's,
counted in instructions; see the README's performance table). So ``main.py`` calls ``begin``
before its first import and ``done`` after its last: ``done`` freezes what the import built
(``gc.freeze``: later collections skip it, and the Functions Framework's worker, forked from the
process that imported, shares those pages instead of copying them) and turns the collector
back on. The import itself leaves almost no cyclic garbage (a few hundred objects), which
stays frozen with the rest.

Nothing else changes: no I/O, no client, no setting read; an import that fails leaves the
collector paused in a process that is about to exit anyway.
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
    if _was_enabled.pop() if _was_enabled else True:
        gc.enable()
