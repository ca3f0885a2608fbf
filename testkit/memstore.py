"""An in-memory stand-in for the few Firestore calls some service paths make (documents,
equality queries, ``@firestore.transactional`` transactions), so unit tests can run those
paths without an emulator. Writes apply at commit, in order; a transform is kept as written,
but ``ArrayUnion`` appends and ``Increment`` adds. Nothing else of Firestore is modelled
(no contention, no indexes): the integration tests cover the real thing."""

from __future__ import annotations

import itertools
from typing import Any

from google.cloud import firestore as gcf


class Snap:
    def __init__(self, ref, data):
        self.reference, self.id, self._data = ref, ref.id, data

    @property
    def exists(self) -> bool:
        return self._data is not None

    def to_dict(self):
        return None if self._data is None else dict(self._data)

    def get(self, field: str):
        return self._data[field]


class Ref:
    def __init__(self, store, path: str):
        self.store, self.path, self.id = store, path, path.rsplit("/", 1)[-1]

    def get(self, transaction=None):
        return Snap(self, self.store.docs.get(self.path))

    def delete(self):
        self.store.docs.pop(self.path, None)

    def collection(self, name: str):
        return Query(self.store, f"{self.path}/{name}")


class Query:
    def __init__(self, store, path: str, filters=()):
        self.store, self.path, self.filters = store, path, filters

    def document(self, doc_id: str) -> Ref:
        return Ref(self.store, f"{self.path}/{doc_id}")

    def where(self, *, filter):  # noqa: A002 - the SDK's keyword
        assert filter.op_string == "==", "only equality filters are modelled"
        return Query(self.store, self.path, (*self.filters, (filter.field_path, filter.value)))

    def limit(self, n: int):
        return self

    def stream(self):
        prefix = self.path + "/"
        return [Snap(Ref(self.store, p), dict(d)) for p, d in sorted(self.store.docs.items())
                if p.startswith(prefix) and "/" not in p[len(prefix):]
                and all(d.get(k) == v for k, v in self.filters)]


def _apply(doc: dict[str, Any], data: dict[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, gcf.ArrayUnion):
            doc[key] = [*doc.get(key, []), *value.values]
        elif isinstance(value, gcf.Increment):
            doc[key] = (doc.get(key) or 0) + value.value
        else:
            doc[key] = value


class Txn:
    """Enough of a Transaction for ``@gcf.transactional`` (one attempt)."""

    _read_only, _max_attempts = False, 1
    _ids = itertools.count(1)

    def __init__(self, store):
        self.store, self.writes, self._id = store, [], None

    def _clean_up(self):
        self.writes = []

    def _begin(self, retry_id=None):
        self._id = next(self._ids)

    def _rollback(self):
        self.writes = []

    def _commit(self):
        if self.store.crash_at_commit:
            self.store.crash_at_commit -= 1
            self.writes = []
            raise ConnectionError("the instance died before the commit")
        self.store.commit_log.append([(op, ref.path) for op, ref, _, _ in self.writes])
        for op, ref, data, merge in self.writes:
            if op == "create":
                assert ref.path not in self.store.docs, f"{ref.path} exists"
                self.store.docs[ref.path] = {}
            elif op == "set" and not merge:
                self.store.docs[ref.path] = {}
            elif op == "delete":
                self.store.docs.pop(ref.path, None)
                continue
            _apply(self.store.docs.setdefault(ref.path, {}), data)
        self.store.commits += 1
        self.writes = []

    def get_all(self, refs):
        return [ref.get(transaction=self) for ref in refs]

    def create(self, ref, data):
        self.writes.append(("create", ref, data, False))

    def set(self, ref, data, merge=False):
        self.writes.append(("set", ref, data, merge))

    def update(self, ref, data, option=None):
        assert ref.path in self.store.docs, f"no document {ref.path} to update"
        self.writes.append(("update", ref, data, True))

    def delete(self, ref):
        self.writes.append(("delete", ref, None, False))


class Store:
    """The database: ``docs`` maps a document path to its fields. ``crash_at_commit``: how
    many of the next commits fail (nothing written), as an instance dying at that moment.
    ``commit_log``: each commit's writes, (operation, path), in order."""

    def __init__(self, docs: dict[str, dict] | None = None):
        self.docs = dict(docs or {})
        self.crash_at_commit = 0
        self.commits = 0
        self.commit_log: list[list[tuple[str, str]]] = []

    def collection(self, path: str) -> Query:
        return Query(self, path)

    def transaction(self) -> Txn:
        return Txn(self)

    def events(self, event_type: str) -> list[dict]:
        return [d for p, d in self.docs.items() if p.startswith(f"topics/{event_type}/events/")]


def names(value, text: str) -> bool:
    """Whether a document's data holds ``text`` anywhere (keys, values, references)."""
    if isinstance(value, dict):
        return any(names(k, text) or names(v, text) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(names(v, text) for v in value)
    return text in str(getattr(value, "path", value))
