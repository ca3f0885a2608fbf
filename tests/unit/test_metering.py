"""The read/write meter's bookkeeping (the client instrumentation runs in tests/integration)."""

from __future__ import annotations

from flowsuite.core import metering


def test_nested_meters_add_their_counts_to_the_outer_one():
    with metering.metered() as outer:
        outer.reads += 1
        with metering.metered() as inner:
            inner.reads, inner.writes = 2, 3
        assert inner.fields() == {"fs_reads": 2, "fs_writes": 3}
    assert outer.fields() == {"fs_reads": 3, "fs_writes": 3}
    assert metering.fields() == {}  # outside any meter


def test_paused_io_is_not_counted():
    with metering.metered() as meter:
        with metering.paused():
            assert metering.fields() == {}
        assert metering.fields() == {"fs_reads": 0, "fs_writes": 0}
    assert meter.reads == 0


def test_a_query_counts_its_documents_and_at_least_one_read():
    meter = metering.Meter()
    assert list(metering._counted(iter([]), meter, lambda r: True, minimum=1)) == []
    assert meter.reads == 1
    rows = [{"doc": 1}, {}, {"doc": 2}]
    assert list(metering._counted(iter(rows), meter, lambda r: "doc" in r, minimum=1)) == rows
    assert meter.reads == 3


def test_a_stream_left_early_counts_what_it_read():
    meter = metering.Meter()
    stream = metering._counted(iter([1, 2, 3]), meter, lambda r: True, minimum=0)
    assert next(stream) == 1
    stream.close()
    assert meter.reads == 1


def test_a_write_names_the_collection_it_writes_to():
    from google.cloud.firestore_v1.types import write

    root = "projects/p/databases/(default)/documents"
    assert metering.collection_of(write.Write(delete=f"{root}/orders/o1")) == "orders"
    assert metering.collection_of(write.Write(update={"name": f"{root}/users/u/notifications/n"})) == "notifications"
    assert metering.collection_of(write.Write(update={"name": f"{root}/users/u"})._pb) == "users"


def test_a_write_names_the_top_level_fields_it_sets():
    from google.cloud.firestore_v1.types import common, write

    root = "projects/p/databases/(default)/documents"
    created = write.Write(update={"name": f"{root}/orders/o1", "fields": {"status": {"string_value": "x"},
                                                                          "total": {"integer_value": 5}}})
    assert metering.fields_written(created) == ("orders", {"status", "total"})
    updated = write.Write(
        update={"name": f"{root}/deliveries/d1", "fields": {"steps": {"map_value": {}}}},
        update_mask=common.DocumentMask(field_paths=["steps.push", "`odd.name`.x", "status"]),
        update_transforms=[write.DocumentTransform.FieldTransform(field_path="updated_time",
                                                                  set_to_server_value="REQUEST_TIME")])
    assert metering.fields_written(updated) == ("deliveries", {"steps", "odd.name", "status", "updated_time"})
    assert metering.fields_written(write.Write(delete=f"{root}/orders/o1")) == ("orders", set())


def test_the_fields_written_are_logged_under_the_emulator_only(monkeypatch, capsys):
    import json

    from google.cloud.firestore_v1.types import write

    root = "projects/p/databases/(default)/documents"
    writes = [write.Write(update={"name": f"{root}/orders/o1", "fields": {"status": {"string_value": "x"}}}),
              write.Write(update={"name": f"{root}/users/u/notifications/n", "fields": {"read": {"boolean_value": 0}}})]
    monkeypatch.delenv("FUNCTIONS_EMULATOR", raising=False)
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    metering._count_writes({"writes": writes})
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("FUNCTIONS_EMULATOR", "true")
    metering._count_writes({"writes": writes})
    line = json.loads(capsys.readouterr().out)
    assert line["message"] == "firestore wrote" and line["severity"] == "DEBUG"
    assert line["fs_fields"] == {"notifications": ["read"], "orders": ["status"]}
