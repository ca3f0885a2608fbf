"""Base models for the edge: requests refuse unknown fields, responses are plain JSON."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


class Request(BaseModel):
    """A callable's request. Unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


IdempotencyKey = Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
def _document_id(value: str) -> str:
    if value in (".", "..") or (value.startswith("__") and value.endswith("__")):
        raise ValueError("is not a valid document id")
    return value


# A Firebase Auth uid as a Firestore document id: 1-128 characters, no "/", not "." or "..".
Uid = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^/]+$"), AfterValidator(_document_id)]
DocId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]


class IdempotentRequest(Request):
    """A state-changing request: a repeat with the same key returns the first answer."""

    idempotency_key: IdempotencyKey
