"""Base models for the edge: requests refuse unknown fields, responses are plain JSON."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


class Request(BaseModel):
    """A callable's request. Unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, defer_build=True)


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


IdempotencyKey = Annotated[str, StringConstraints(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]


def is_reserved_id(value: str) -> bool:
    """Firestore refuses these as document ids: ".", ".." and any ``__...__``. Pure."""
    return value in (".", "..") or (value.startswith("__") and value.endswith("__"))


def not_reserved(value: str) -> str:
    if is_reserved_id(value):
        raise ValueError("is a reserved document id (\".\", \"..\" and \"__...__\" are not allowed)")
    return value


# A Firebase Auth uid as a Firestore document id: 1-128 characters, no "/", not reserved.
Uid = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^/]+$"), AfterValidator(not_reserved)]
# A document id in a request: letters, digits, "_" and "-", not reserved ("__...__").
DocId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$"),
                  AfterValidator(not_reserved)]


class IdempotentRequest(Request):
    """A state-changing request: a repeat with the same key returns the first answer."""

    idempotency_key: IdempotencyKey
