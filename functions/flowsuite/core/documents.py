"""Collection declarations: each domain declares the documents it owns, and writes through them.

    @collection("orders/{order_id}", read="owner (uid or user_ref), staff", write="orders functions only")
    class OrderDoc(Document): ...

    txn.create(ref, OrderDoc.new(order_id=order_id, status="pending_payment", ...))   # a whole document
    txn.update(ref, OrderDoc.fields(status="paid", updated_time=gcf.SERVER_TIMESTAMP))  # some of its fields

The declarations feed ``docs/collections.md`` (Firestore and FlutterFlow types,
owner, access) and the tests that check erasure and indexes; they describe what
the code writes, they do not replace the rules in ``firestore.rules``. Another
domain reads a collection only where its declaration says so (``read_by``:
domain -> what it reads and why); only the owner ever writes it (the kernel's
records, which ops owns, are written by the kernel on its behalf). Every
write builds its data with ``fields`` or ``new``, which refuse a field the model
does not declare when the write is made, so the docs cannot drift from the data
(``tests/unit/test_typed_writes.py`` refuses a write built from a raw dict).
Both return a plain dict of exactly the values given: the model checks, it never
converts. No Firestore I/O, and a model is built on its first ``new`` (``defer_build``),
never at import.
"""

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, ValidationError, WithJsonSchema

# Firestore's transforms (SERVER_TIMESTAMP, DELETE_FIELD, Increment, ArrayUnion, ...) are all
# defined in this module: a value of one of its types fits any declared field.
_TRANSFORMS_MODULE = "google.cloud.firestore_v1.transforms"


class DocumentWriteError(ValueError):
    """A write that does not fit its document model: a field the model does not declare, or
    (for a whole document) a value of the wrong type or a required field left out. A bug in
    the writing code, never the caller's input: it surfaces as ``internal``."""


def is_transform(value: Any) -> bool:
    """Whether ``value`` is a Firestore transform, which stands for a value the server computes. Pure."""
    return type(value).__module__ == _TRANSFORMS_MODULE


class Document(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)

    @classmethod
    def fields(cls, *parts: Mapping[str, Any], **values: Any) -> dict[str, Any]:
        """The data of a partial write (``update``, ``set(..., merge=True)``): ``parts`` and then
        ``values`` merged in order (a later key wins, as in ``{**a, **b}``). A key is a field or a
        dotted path (``"steps.refund"``, whose first segment is the field); each must name a field
        the model declares, else ``DocumentWriteError``. Values are not checked: a partial write
        may set a field to a Firestore transform or clear it with ``DELETE_FIELD``."""
        data: dict[str, Any] = {}
        for part in parts:
            data.update(part)
        data.update(values)
        declared = cls.model_fields
        unknown = sorted({key for key in data if key.split(".", 1)[0] not in declared})
        if unknown:
            raise DocumentWriteError(
                f"{cls.__name__} ({_path_of(cls)}) declares no field {', '.join(map(repr, unknown))}: "
                f"declare it on the model, so docs/collections.md lists it")
        return data

    @classmethod
    def new(cls, *parts: Mapping[str, Any], **values: Any) -> dict[str, Any]:
        """The data of a whole document (``create``, ``set`` without merge): names checked as in
        ``fields``, and the values validated by the model (types, required fields), a Firestore
        transform standing for any value. Returns the values as given, never converted."""
        data = cls.fields(*parts, **values)
        paths = sorted(key for key in data if "." in key)
        if paths:
            raise DocumentWriteError(f"{cls.__name__}: a whole document has fields, not paths: {', '.join(paths)}")
        computed = {key for key, value in data.items() if is_transform(value)}
        try:
            cls.model_validate({key: value for key, value in data.items() if key not in computed})
        except ValidationError as exc:
            problems = [e for e in exc.errors(include_input=False, include_url=False)
                        if not (e["type"] == "missing" and len(e["loc"]) == 1 and e["loc"][0] in computed)]
            if problems:
                raise DocumentWriteError(
                    f"{cls.__name__} ({_path_of(cls)}): " + "; ".join(
                        f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in problems[:10])) from None
        return data


def _path_of(model: type[Document]) -> str:
    return next((path for path, col in COLLECTIONS.items() if col.model is model), "not a declared collection")


# Firestore-specific field types, marked in the JSON schema so docs can name them.
DocRef = Annotated[Any, WithJsonSchema({"type": "string", "format": "document-reference"})]
Timestamp = Annotated[Any, WithJsonSchema({"type": "string", "format": "date-time"})]


@dataclasses.dataclass(frozen=True)
class Collection:
    path: str
    domain: str
    model: type[Document]
    read: str
    write: str
    description: str
    read_by: tuple[tuple[str, str], ...] = ()  # (domain, what it reads and why): other domains' server reads


COLLECTIONS: dict[str, Collection] = {}


def collection(path: str, *, read: str, write: str, read_by: dict[str, str] | None = None,
               domain: str | None = None):
    """Declares ``path``'s document model. The owner is the declaring module's domain, or
    ``domain`` for a collection the kernel writes on a domain's behalf (ops' bus records).
    ``read_by``: the other domains that read it on the server, and what they read and why."""

    def register(model: type[Document]) -> type[Document]:
        from flowsuite.core.options import domain_of  # noqa: PLC0415

        COLLECTIONS[path] = Collection(path, domain or domain_of(model.__module__), model, read, write,
                                       (model.__doc__ or "").strip(), tuple(sorted((read_by or {}).items())))
        return model

    return register
