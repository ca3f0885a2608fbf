"""firestore.indexes.json holds every index the code's queries need, and the TTL policies."""

import json
from pathlib import Path

from flowsuite.core import indexes

FILE = json.loads((Path(__file__).resolve().parents[2] / "firestore.indexes.json").read_text())


def test_every_composite_query_has_its_index():
    present = {(i["collectionGroup"], i["queryScope"], tuple((f["fieldPath"], f["order"]) for f in i["fields"]))
               for i in FILE["indexes"]}
    missing = [i for i in indexes.COMPOSITE if (i.collection, i.scope, i.fields) not in present]
    assert not missing, f"add to firestore.indexes.json: {missing}"


def test_collection_group_fields_are_indexed():
    overrides = {(o["collectionGroup"], o["fieldPath"]): o for o in FILE["fieldOverrides"]}
    for sf in indexes.SINGLE_FIELD:
        override = overrides.get((sf.collection, sf.field))
        assert override, f"missing field override for {sf}"
        assert any(x["queryScope"] == sf.scope for x in override["indexes"])


def test_ttl_policies_are_declared():
    ttl = {(o["collectionGroup"], o["fieldPath"]) for o in FILE["fieldOverrides"] if o.get("ttl")}
    assert {(t.collection, t.field) for t in indexes.TTL} <= ttl


def test_the_code_writes_the_ttl_fields():
    root = Path(__file__).resolve().parents[2] / "functions" / "flowsuite"
    code = "\n".join(p.read_text() for p in root.rglob("*.py"))
    for t in indexes.TTL:
        assert f'"{t.field}"' in code


def test_the_file_is_generated_from_the_declaration():
    from devtools import indexes as generator

    assert (Path(__file__).resolve().parents[2] / "firestore.indexes.json").read_text() == generator.render()
