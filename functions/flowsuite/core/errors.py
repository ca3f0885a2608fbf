"""One error hierarchy for the suite, mapped to callable error codes in one place.

Domain code raises these; the callable edge (`flowsuite.core.callables`) turns
them into ``HttpsError``. Anything else that escapes becomes ``internal`` with no
details but the correlation id, which the log line carries too.
"""

from __future__ import annotations

from typing import Any


class FlowsuiteError(Exception):
    """Base of every error a caller may see. ``code`` is the callable status."""

    code = "internal"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


# A subscriber's permanent error whose dead letter an admin must replay by its id, never with
# "replay all" (its replay moves money: e.g. a refund staff may have returned another way).
MANUAL_REPLAY = "manual_replay"


def manual_replay(exc: BaseException) -> bool:
    """Whether a failure's dead letter is replayed only by name (``details[MANUAL_REPLAY]``). Pure."""
    return isinstance(exc, FlowsuiteError) and bool(exc.details.get(MANUAL_REPLAY))


class InvalidArgumentError(FlowsuiteError):
    code = "invalid-argument"

    def __init__(self, message: str, *, fields: list[dict[str, Any]] | None = None, details=None):
        super().__init__(message, details={**(details or {}), "fields": fields or []})
        self.fields = fields or []

    @classmethod
    def for_field(cls, field: str, message: str, type_: str = "value_error") -> InvalidArgumentError:
        return cls(f"{field}: {message}", fields=[{"field": field, "type": type_, "message": message}])


class UnauthenticatedError(FlowsuiteError):
    code = "unauthenticated"


class PermissionDeniedError(FlowsuiteError):
    code = "permission-denied"


class NotFoundError(FlowsuiteError):
    code = "not-found"


class FailedPreconditionError(FlowsuiteError):
    code = "failed-precondition"


class AlreadyExistsError(FlowsuiteError):
    code = "already-exists"


class ResourceExhaustedError(FlowsuiteError):
    code = "resource-exhausted"


class AbortedError(FlowsuiteError):
    """Too much contention on the same documents: safe to retry the same call."""

    code = "aborted"


class RetryLaterError(FlowsuiteError):
    """A delivery that should be retried later without counting as a defect.

    It does not use up ``BUS_MAX_ATTEMPTS``: it waits, with backoff, until the
    delivery has been failing for ``BUS_MAX_RETRY_HOURS`` (or ``max_wait_seconds``
    when the raiser knows a shorter bound), and then becomes a dead letter like
    any other failure."""

    code = "unavailable"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 max_wait_seconds: float | None = None):
        super().__init__(message, details=details)
        self.max_wait_seconds = max_wait_seconds


HTTP_STATUS = {
    "invalid-argument": 400,
    "failed-precondition": 400,
    "unauthenticated": 401,
    "permission-denied": 403,
    "not-found": 404,
    "already-exists": 409,
    "aborted": 409,
    "resource-exhausted": 429,
    "internal": 500,
    "unavailable": 503,
}


def validation_fields(exc) -> list[dict[str, Any]]:
    """pydantic ValidationError -> [{field, type, message}] (never the input itself)."""
    fields = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(part) for part in err.get("loc", ())) or "data"
        fields.append({"field": loc, "type": err.get("type", "value_error"), "message": err.get("msg", "invalid")})
    return fields


def invalid_request(exc) -> InvalidArgumentError:
    """The caller's payload failed its request model: name every failing field."""
    fields = validation_fields(exc)
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return InvalidArgumentError(f"Invalid request: {summary}", fields=fields)


def describe(exc: BaseException, correlation_id: str) -> tuple[str, str, dict[str, Any]]:
    """The wire form of any exception: (code, message, details). Pure, for unit tests."""
    if isinstance(exc, FlowsuiteError) and exc.code != "internal":
        return exc.code, exc.message, {**exc.details, "correlation_id": correlation_id}
    if is_contention(exc):
        return "aborted", "Too many concurrent changes to the same data; retry the call.", {
            "correlation_id": correlation_id, "retryable": True}
    return "internal", "Internal error", {"correlation_id": correlation_id}


def to_https_error(exc: BaseException, correlation_id: str):
    from firebase_functions import https_fn  # noqa: PLC0415

    code, message, details = describe(exc, correlation_id)
    return https_fn.HttpsError(https_fn.FunctionsErrorCode(code), message, details)


def caused_by(exc: BaseException, *kinds: type[BaseException]) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, is one of
    ``kinds``: the Firestore SDK rolls a failed commit back, and a rollback that raises
    arrives in the commit's error's stead, with it as context. Pure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def is_contention(exc: BaseException) -> bool:
    """Firestore gave up on a transaction because of contention (ABORTED, or the
    client's "Failed to commit transaction in N attempts")."""
    if type(exc).__name__ == "Aborted":
        return True
    return isinstance(exc, ValueError) and str(exc).startswith("Failed to commit transaction")
