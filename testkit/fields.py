"""Fields the code wrote during an integration run against the fields its document models declare.

Under the emulators the client layer logs the top-level fields of every commit per
collection (``firestore wrote``, see ``flowsuite.core.metering``). Whatever the
code wrote must be declared on the collection's document model, so
``docs/collections.md`` lists it. Emulator-only collections (``_faults``,
``_push_outbox``) are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MESSAGE = '"firestore wrote"'


def written(log: Path, offset: int = 0) -> dict[str, set[str]]:
    """Collection id -> the top-level fields written, from the log lines after ``offset``."""
    out: dict[str, set[str]] = {}
    with open(log, errors="replace") as handle:
        handle.seek(offset)
        for raw in handle:
            start = raw.find("{")
            if start < 0 or MESSAGE not in raw:
                continue
            try:
                line = json.loads(raw[start:])
            except ValueError:
                continue
            for collection, names in (line.get("fs_fields") or {}).items():
                out.setdefault(collection, set()).update(names)
    return out


def declared(collections: dict[str, Any]) -> dict[str, set[str]]:
    """Collection id (the last collection of a declared path) -> the fields its model declares."""
    out: dict[str, set[str]] = {}
    for path, col in collections.items():
        out.setdefault(path.split("/")[-2], set()).update(col.model.model_fields)
    return out


def undocumented(seen: dict[str, set[str]], documented: dict[str, set[str]]) -> dict[str, list[str]]:
    """What was written but is not declared: a collection nobody declared, or fields its model lacks."""
    out = {}
    for collection, names in sorted(seen.items()):
        if collection.startswith("_"):
            continue  # emulator-only collections (fault injection, the push recorder)
        missing = sorted(names - documented.get(collection, set()))
        if missing:
            out[collection] = missing
    return out
