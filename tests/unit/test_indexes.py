"""firestore.indexes.json holds every index the code's queries need, and the TTL policies."""

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest
from flowsuite.core import indexes

ROOT = Path(__file__).resolve().parents[2]
FILE = json.loads((ROOT / "firestore.indexes.json").read_text())


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


def test_the_ttl_fields_are_declared_on_their_collections():
    """The TTL field is part of the collection's document model (so docs/collections.md lists it)."""
    from devtools import contracts

    # a TTL policy names the collection group: the last collection of the path (topics/{t}/events -> events)
    models = {path.split("/")[-2]: c.model for path, c in contracts.load()["collections"].items()}
    for t in indexes.TTL:
        assert t.field in models[t.collection].model_fields, t


def string_constants(obj) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(inspect.getsource(obj)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def query_code(used_by: str):
    """What an index declaration says uses it: a function or module of the suite, or the app or the console."""
    where = used_by.split(" (")[0]
    if where.startswith(("app:", "console:")):
        return where.split(":")[0]
    module, _, name = where.rpartition(".")
    try:
        return getattr(importlib.import_module(f"flowsuite.{module}"), name)
    except (ModuleNotFoundError, ValueError):
        return importlib.import_module(f"flowsuite.{where}")


@pytest.mark.parametrize("index", [*indexes.COMPOSITE, *indexes.SINGLE_FIELD], ids=lambda i: i.used_by)
def test_every_index_names_a_query_that_uses_its_fields(index):
    """Each declaration names the code that runs its query, and that code names every indexed field
    (as a string constant of the function or module; the console's queries in its source)."""
    import flowsuite.notifications.service  # noqa: F401 - modules a declaration may name
    import flowsuite.ops.service  # noqa: F401
    import flowsuite.orders.service  # noqa: F401

    fields = [f for f, _ in index.fields] if isinstance(index, indexes.Index) else [index.field]
    code = query_code(index.used_by)
    if code == "app":
        return  # the FlutterFlow app's Backend Queries: documented in docs/flutterflow.md
    if code == "console":
        source = (ROOT / "console" / "src" / "app.js").read_text()
        for field in fields:
            assert re.search(r'(where|orderBy)\("' + re.escape(field) + '"', source), (index, field)
        return
    constants = string_constants(code)
    missing = [f for f in fields if f not in constants]
    assert not missing, f"{index.used_by} does not query {missing}"


def test_the_file_is_generated_from_the_declaration():
    from devtools import indexes as generator

    assert (Path(__file__).resolve().parents[2] / "firestore.indexes.json").read_text() == generator.render()
