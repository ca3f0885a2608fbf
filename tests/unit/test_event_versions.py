"""Versioned events: declared histories, upcasting, and a contract that refuses incompatible changes."""

from __future__ import annotations

import copy

import pytest
from flowsuite.core import events
from flowsuite.core.errors import RetryLaterError
from pydantic import ValidationError

from devtools import contracts


class Line(events.EventData):
    sku: str
    quantity: int


class PlacedV1(events.EventData):
    """Something was placed."""

    order_id: str
    total: int
    lines: list[Line] = []


class PlacedV3(events.EventData):
    """Something was placed (v3: total in minor units as amount, a channel)."""

    order_id: str
    amount: int
    channel: str


def spec(model=PlacedV3, versions=((1, "first"), (2, "amount"), (3, "channel"))) -> events.EventType:
    # Built by hand: registering a test type would add it to the committed contracts.
    return events.EventType("test.placed", model, "test", "test", tuple(versions))


@pytest.fixture
def upcasters(monkeypatch):
    monkeypatch.setitem(events.UPCASTERS, ("test.placed", 1),
                        lambda d: {**{k: v for k, v in d.items() if k != "total"}, "amount": d["total"]})
    monkeypatch.setitem(events.UPCASTERS, ("test.placed", 2), lambda d: {**d, "channel": "app"})


def envelope(version: int, data: dict) -> events.Envelope:
    return events.Envelope(id="e1", type="test.placed", source="test", subject="s", time="2026-01-01T00:00:00Z",
                           correlation_id="c-1234567", schema_version=version, data=data)


def test_the_declared_history_gives_the_version():
    assert spec().version == 3
    assert events.EVENT_TYPES["order.placed"].version == 1
    assert events.EVENT_TYPES["order.placed"].history == ((1, "first version"),)


def test_versions_are_declared_without_gaps():
    with pytest.raises(ValueError, match="without gaps"):
        events.event_type("test.gappy", source="test", versions={1: "a", 3: "c"})


def test_older_data_is_upcast_step_by_step(upcasters):
    data = events.data_of(spec(), envelope(1, {"order_id": "o1", "total": 500}))
    assert data == PlacedV3(order_id="o1", amount=500, channel="app")
    assert events.data_of(spec(), envelope(2, {"order_id": "o1", "amount": 7})).channel == "app"
    assert events.data_of(spec(), envelope(3, {"order_id": "o1", "amount": 7, "channel": "web"})).channel == "web"


def test_a_missing_upcaster_is_an_error_and_is_listed(monkeypatch):
    monkeypatch.setitem(events.UPCASTERS, ("test.placed", 1), lambda d: d)
    with pytest.raises(LookupError, match="from version 2"):
        events.upcast(spec(), 1, {"order_id": "o1"})
    assert events.missing_upcasters({"test.placed": spec()}) == ["test.placed v2"]


def test_every_declared_version_has_its_upcasters():
    assert events.missing_upcasters() == []


def test_newer_data_is_read_when_it_parses_and_waits_when_it_does_not():
    older_code = spec(PlacedV1, ((1, "first"),))
    newer = envelope(2, {"order_id": "o1", "total": 5, "currency": "eur"})  # a new optional field
    assert events.data_of(older_code, newer) == PlacedV1(order_id="o1", total=5)
    with pytest.raises(RetryLaterError, match="newer than this consumer"):
        events.data_of(older_code, envelope(2, {"order_id": "o1", "amount": 5}))
    with pytest.raises(ValidationError):  # the same version that does not parse is a defect, not a wait
        events.data_of(older_code, envelope(1, {"order_id": "o1"}))


# ---- the contract test ----------------------------------------------------------

def schema(model) -> dict:
    return model.model_json_schema()


def test_a_new_optional_field_and_a_new_description_are_compatible():
    class Newer(events.EventData):
        """Described differently."""

        order_id: str
        total: int
        lines: list[Line] = []
        note: str = ""

    assert contracts.incompatibilities(schema(PlacedV1), schema(Newer)) == []


def test_removed_changed_and_new_required_fields_are_incompatible():
    class Newer(events.EventData):
        order_id: int
        lines: list[Line] = []
        channel: str

    assert contracts.incompatibilities(schema(PlacedV1), schema(Newer)) == [
        "order_id: type changed", "total: removed", "channel: new required field"]


def test_a_field_made_nullable_or_required_is_incompatible():
    class Newer(events.EventData):
        order_id: str | None
        total: int
        lines: list[Line]

    assert contracts.incompatibilities(schema(PlacedV1), schema(Newer)) == [
        "order_id: type changed", "lines: now required"]


def test_a_nested_model_follows_the_same_rules():
    old = schema(PlacedV1)
    new = copy.deepcopy(old)
    new["$defs"]["Line"]["properties"]["quantity"] = {"type": "string"}
    assert contracts.incompatibilities(old, new) == ["Line.quantity: type changed"]


def decl_of(event_spec) -> dict:
    return {"events": {event_spec.name: event_spec}, "subscribers": {}}


def committed_as(event_spec) -> dict:
    return contracts.event_schemas(decl_of(event_spec))


def test_an_incompatible_schema_needs_a_new_version_and_an_upcaster(monkeypatch):
    v1 = spec(PlacedV1, ((1, "first"),))
    committed = committed_as(v1)
    same_version = spec(PlacedV3, ((1, "first"),))
    problems = contracts.version_problems(decl_of(same_version), committed)
    assert problems and all(p.startswith("test.placed v1:") for p in problems)
    assert any("total: removed" in p for p in problems) and any("declare version 2" in p for p in problems)

    bumped = spec(PlacedV3, ((1, "first"), (2, "amount and channel")))
    assert contracts.version_problems(decl_of(bumped), committed) == ["test.placed v1: no upcaster to the next version"]
    monkeypatch.setitem(events.UPCASTERS, ("test.placed", 1), lambda d: d)
    assert contracts.version_problems(decl_of(bumped), committed) == []
    assert contracts.version_problems(decl_of(v1), committed_as(bumped)) == [
        "test.placed: version 1 is older than the committed 2"]


def test_the_committed_event_schemas_change_only_compatibly_or_with_a_new_version():
    assert contracts.version_problems(contracts.load(), contracts.committed_event_schemas()) == []
