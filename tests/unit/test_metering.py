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
