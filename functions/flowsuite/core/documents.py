"""Collection declarations: each domain declares the documents it owns.

    @collection("orders/{order_id}", read="owner (uid or user_ref), staff", write="orders functions only")
    class OrderDoc(Document): ...

The declarations feed ``docs/collections.md`` (Firestore and FlutterFlow types,
owner, access) and the tests that check erasure and indexes; they describe what
the code writes, they do not replace the rules in ``firestore.rules``. Another
domain reads a collection only where its declaration says so (``read_by``:
domain -> what it reads and why); only the owner ever writes it.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema


class Document(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)


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


def collection(path: str, *, read: str, write: str, read_by: dict[str, str] | None = None):
    def register(model: type[Document]) -> type[Document]:
        from flowsuite.core.options import domain_of  # noqa: PLC0415

        COLLECTIONS[path] = Collection(path, domain_of(model.__module__), model, read, write,
                                       (model.__doc__ or "").strip(), tuple(sorted((read_by or {}).items())))
        return model

    return register
