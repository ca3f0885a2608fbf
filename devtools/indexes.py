"""Writes firestore.indexes.json from the one declaration in flowsuite/core/indexes.py.

    python -m devtools.indexes      # (make contracts runs it too)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    sys.path.insert(0, str(ROOT / "functions"))
    from flowsuite.core import indexes

    out = {"indexes": [], "fieldOverrides": []}
    for i in indexes.COMPOSITE:
        out["indexes"].append({"collectionGroup": i.collection, "queryScope": i.scope,
                               "fields": [{"fieldPath": f, "order": o} for f, o in i.fields]})
    for sf in indexes.SINGLE_FIELD:
        out["fieldOverrides"].append({"collectionGroup": sf.collection, "fieldPath": sf.field, "indexes": [
            {"order": order, "queryScope": scope}
            for scope in ("COLLECTION", "COLLECTION_GROUP") for order in ("ASCENDING", "DESCENDING")]})
    for t in indexes.TTL:
        out["fieldOverrides"].append({"collectionGroup": t.collection, "fieldPath": t.field, "ttl": True, "indexes": []})
    return json.dumps(out, indent=2) + "\n"


if __name__ == "__main__":
    (ROOT / "firestore.indexes.json").write_text(render())
    print("indexes: wrote firestore.indexes.json")
