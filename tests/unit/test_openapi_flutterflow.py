"""docs/openapi-flutterflow.json (issue 22): OpenAPI 3.0, request bodies inline (FlutterFlow's
import loses them behind $ref and allOf), every callable's body fields present."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads((ROOT / "docs" / "openapi-flutterflow.json").read_text())


def callables():
    import main  # noqa: F401 - registers every callable
    from flowsuite.core.callables import CALLABLES

    return sorted(CALLABLES.values(), key=lambda c: c.name)


def test_it_is_openapi_3_0_with_no_refs_or_all_of():
    assert SPEC["openapi"].startswith("3.0")
    text = json.dumps(SPEC["paths"])
    assert "$ref" not in text and "allOf" not in text and '"const"' not in text


@pytest.mark.parametrize("spec", callables(), ids=lambda c: c.name)
def test_every_callables_body_fields_are_in_it(spec):
    body = SPEC["paths"][f"/{spec.name}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    data = body["properties"]["data"]
    assert data.get("type") == "object"
    assert set(spec.request.model_fields) <= set(data.get("properties", {})), spec.name
    required = {n for n, f in spec.request.model_fields.items() if f.is_required()}
    assert required <= set(data.get("required", [])), spec.name


def test_null_unions_read_as_nullable():
    from devtools.contracts import openapi_flutterflow

    spec = {"openapi": "3.1.0", "info": {"title": "t", "version": "1", "description": "d"},
            "components": {"schemas": {"A": {"type": "object", "properties": {
                "x": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, {"type": "null"}]},
                "k": {"const": "v"}, "b": {"$ref": "#/components/schemas/B"}}}, "B": {"type": "string"}},
                "securitySchemes": {}},
            "paths": {"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/A"}}}}}}}}
    out = openapi_flutterflow(spec)["paths"]["/a"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert out["properties"]["x"] == {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "nullable": True}
    assert out["properties"]["k"] == {"enum": ["v"]} and out["properties"]["b"] == {"type": "string"}
