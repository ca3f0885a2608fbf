"""Firestore reads and writes per invocation, counted at the client layer.

``clients.firestore()`` instruments the client it builds; an invocation opens
``metered()`` and logs ``meter.fields()`` (``fs_reads``, ``fs_writes`` and
``fs_written``, the collections it wrote) on its last line, so the logs answer
"what does one checkout cost" per correlation id (in production a log-based
metric sums them per function), and "did a refused call write anything".

What is counted is what Firestore bills:
- a read per document a get returns, found or missing;
- a read per document a query returns, and one for a query that returns none;
- one read per count aggregation (Firestore bills one per 1,000 index entries);
- a write per document a commit (a batch, a transaction, a set, an update, a
  delete) writes, counted when the commit succeeds: a transaction retried after
  contention pays for every read of every try, and only its last try's writes.

Meters nest: what an inner meter counts (one delivery of a sweep) is added to
the outer one (the sweep) when it closes. I/O that only the emulator does runs
``paused()``, so the counts are what production would pay.

Under the emulators every commit also logs the top-level fields it wrote per
collection (``firestore wrote``, DEBUG, ``fs_fields``): the integration run
compares them with the collections' document models, so ``docs/collections.md``
lists every field the code writes.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Iterable, Iterator
from typing import Any


@dataclasses.dataclass
class Meter:
    reads: int = 0
    writes: int = 0
    written: set[str] = dataclasses.field(default_factory=set)  # the collections written to

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fs_reads": self.reads, "fs_writes": self.writes}
        if self.written:
            out["fs_written"] = sorted(self.written)
        return out


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("flowsuite_meter", default=None)


@contextlib.contextmanager
def metered() -> Iterator[Meter]:
    outer = _meter.get()
    meter = Meter()
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)
        if outer is not None:
            outer.reads += meter.reads
            outer.writes += meter.writes
            outer.written |= meter.written


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Emulator-only I/O (fault injection, the push recorder) that production never
    does: left out of the counts."""
    token = _meter.set(None)
    try:
        yield
    finally:
        _meter.reset(token)


def fields() -> dict[str, Any]:
    """The current meter's counts so far, for a log line ({} outside a meter)."""
    meter = _meter.get()
    return meter.fields() if meter is not None else {}


def _field(request: Any, name: str) -> Any:
    if request is None:
        return ()
    return request.get(name, ()) if isinstance(request, dict) else getattr(request, name, ())


def collection_of(write: Any) -> str:
    """The collection a Write protobuf writes to (a subcollection's own name)."""
    pb = getattr(write, "_pb", write)
    kind = pb.WhichOneof("operation")
    name = pb.update.name if kind == "update" else pb.delete if kind == "delete" else pb.transform.document
    path = name.split("/documents/", 1)[-1].split("/")
    return path[-2] if len(path) >= 2 else "?"


def _top_level(field_path: str) -> str:
    """The top-level field of a Firestore field path (``steps.push`` -> ``steps``; names with
    special characters are quoted in backticks)."""
    if field_path.startswith("`"):
        return field_path[1:].split("`", 1)[0]
    return field_path.split(".", 1)[0]


def fields_written(write: Any) -> tuple[str, set[str]]:
    """The collection a Write protobuf writes to and the top-level fields it sets (none for a delete)."""
    pb = getattr(write, "_pb", write)
    kind = pb.WhichOneof("operation")
    paths: list[str] = []
    if kind == "update":
        paths += list(pb.update_mask.field_paths) if pb.HasField("update_mask") else list(pb.update.fields.keys())
        paths += [t.field_path for t in pb.update_transforms]
    elif kind == "transform":
        paths += [t.field_path for t in pb.transform.field_transforms]
    return collection_of(pb), {_top_level(p) for p in paths}


def _report_fields(writes: Any) -> None:
    from flowsuite.core import log, settings  # noqa: PLC0415

    if not writes or not settings.is_emulator():
        return
    by_collection: dict[str, set[str]] = {}
    for w in writes:
        collection, names = fields_written(w)
        if names:
            by_collection.setdefault(collection, set()).update(names)
    if by_collection:
        log.debug("firestore wrote", fs_fields={c: sorted(n) for c, n in sorted(by_collection.items())})


def _count_writes(request: Any) -> None:
    writes = _field(request, "writes")
    _report_fields(writes)
    meter = _meter.get()
    if meter is None:
        return
    meter.writes += len(writes)
    meter.written.update(collection_of(w) for w in writes)


def _counted(responses: Iterable[Any], meter: Meter | None, is_document, minimum: int) -> Iterator[Any]:
    """Passes a server stream through, counting its documents into the meter that was
    current when the call was made (a stream may be finished in another context)."""
    seen = 0
    try:
        for response in responses:
            if is_document(response):
                seen += 1
            yield response
    finally:
        if meter is not None:
            meter.reads += max(minimum, seen)


def instrument(client: Any) -> Any:
    """Wraps the client's RPCs that read or write documents. Idempotent."""
    api = client._firestore_api  # noqa: SLF001 - the SDK's one RPC stub; built lazily, cached by the client
    if getattr(api, "_flowsuite_metered", False):
        return client
    batch_get, run_query, run_aggregation = api.batch_get_documents, api.run_query, api.run_aggregation_query

    def counting_writes(rpc):
        def metered(request=None, **kwargs):
            response = rpc(request=request, **kwargs)
            _count_writes(request)  # after the call: a failed commit writes nothing
            return response
        return metered

    def metered_batch_get(request=None, **kwargs):
        return _counted(batch_get(request=request, **kwargs), _meter.get(),
                        lambda r: "found" in r or "missing" in r, minimum=0)

    def metered_run_query(request=None, **kwargs):
        return _counted(run_query(request=request, **kwargs), _meter.get(), lambda r: "document" in r, minimum=1)

    def metered_run_aggregation(request=None, **kwargs):
        if (meter := _meter.get()) is not None:
            meter.reads += 1
        return run_aggregation(request=request, **kwargs)

    api.commit, api.batch_write = counting_writes(api.commit), counting_writes(api.batch_write)
    api.batch_get_documents, api.run_query = metered_batch_get, metered_run_query
    api.run_aggregation_query = metered_run_aggregation
    api._flowsuite_metered = True  # noqa: SLF001
    return client
