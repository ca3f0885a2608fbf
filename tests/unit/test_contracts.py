"""The generated contracts match the code, and the OpenAPI document is valid OpenAPI 3.1."""

import json

from devtools import contracts


def test_committed_contracts_match_the_code():
    files = contracts.render()
    stale = [str(p.relative_to(contracts.ROOT)) for p, text in files.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"run `make contracts`: {stale}"


def test_openapi_is_valid_3_1_and_lists_every_callable():
    from openapi_spec_validator import validate

    doc = json.loads((contracts.DOCS / "openapi.json").read_text())
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    decl = contracts.load()
    assert {p.strip("/") for p in doc["paths"]} == set(decl["callables"])
    place = doc["paths"]["/orders_place"]["post"]
    assert place["requestBody"]["content"]["application/json"]["schema"]["required"] == ["data"]
    assert set(place["responses"]) >= {"200", "400", "401", "403", "500"}
    servers = [s["url"] for s in doc["servers"]]
    assert "https://{region}-{project}.cloudfunctions.net" in servers and any("127.0.0.1:5001" in s for s in servers)
    assert doc["components"]["securitySchemes"]["firebaseIdToken"]["scheme"] == "bearer"


def test_every_event_type_has_a_schema_and_a_catalogue_row():
    decl = contracts.load()
    catalogue = (contracts.DOCS / "events.md").read_text()
    for name in decl["events"]:
        assert (contracts.DOCS / "events" / f"{name}.json").is_file()
        assert f"`{name}`" in catalogue


def test_flutterflow_types_are_named_for_firestore_types():
    assert contracts.describe_type({"type": "string", "format": "date-time"}, {}) == ("timestamp", "DateTime")
    assert contracts.describe_type({"type": "string", "format": "document-reference"}, {}) == ("reference", "Doc Reference")
    assert contracts.describe_type({"type": "array", "items": {"type": "integer"}}, {}) == ("array of number (integer)", "List <Integer>")
    assert contracts.describe_type({"anyOf": [{"type": "string"}, {"type": "null"}]}, {}) == ("string or null", "String (nullable)")
