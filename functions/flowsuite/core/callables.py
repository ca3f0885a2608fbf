"""Typed callables: one decorator over ``https_fn.on_call``.

    @callable_function(request=PlaceOrder, response=OrderPlacedAnswer, roles=None, idempotent=True)
    def orders_place(ctx: CallContext, req: PlaceOrder) -> OrderPlacedAnswer: ...

The wrapper checks the caller before any work (sign-in, role from the custom
claim ``role``, and for a callable that changes anything or needs a role, that the
token was not revoked: the account deleted or disabled, or its sessions revoked
since, as a role change does), parses ``data`` with the request model (bad input answers
``invalid-argument`` with the failing fields), runs the handler under an
idempotency record when asked, validates the answer with the response model,
maps every error through the one error map and logs one structured line per
call with its latency and correlation id. Each call is a span, the child of the
caller's ``traceparent`` (or ``X-Cloud-Trace-Context``) when it sends one; an
unexpected exception is logged as an Error Reporting event.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from flowsuite.core import clients, errors, idempotency, log, metering, options, tracing
from flowsuite.core.errors import PermissionDeniedError, UnauthenticatedError

Req = TypeVar("Req", bound=BaseModel)
Resp = TypeVar("Resp", bound=BaseModel)

CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION_RE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")

# Every callable the suite defines, for contracts (OpenAPI) and the manifest check.
CALLABLES: dict[str, "CallableSpec"] = {}


@dataclasses.dataclass(frozen=True)
class CallableSpec:
    name: str
    domain: str
    request: type[BaseModel]
    response: type[BaseModel]
    roles: frozenset[str] | None
    auth: bool
    idempotent: bool
    summary: str
    # The handler keeps the idempotency contract itself, inside its own transaction
    # (cheaper than a separate record: one transaction instead of three).
    own_idempotency: bool = False
    # Changes nothing: a caller with no role to prove is not looked up for revocation (see
    # check_not_revoked and checks_revocation).
    read_only: bool = False

    @property
    def checks_revocation(self) -> bool:
        """Whether a call looks the token up (``check_not_revoked``): every callable that changes
        anything, and every role-gated one even when read-only. An admin's or staff's ID token keeps
        its role claim for up to an hour after ``identity_set_role`` demotes them or the account is
        disabled or deleted; those revoke the account's tokens, and the lookup is how a role-gated
        state-changing callable refuses them, so a role-gated read (dead letters, metrics) does the
        same. The cost, one Auth lookup and no Firestore read, is paid only by admin and staff calls
        of role-gated reads (the console's); a member's read-only call still skips it."""
        return not self.read_only or self.roles is not None


@dataclasses.dataclass(frozen=True)
class CallContext:
    function: str
    domain: str
    uid: str | None
    claims: dict[str, Any]
    correlation_id: str
    idempotency_key: str | None = None

    @property
    def role(self) -> str:
        return str(self.claims.get("role") or "member")

    @property
    def email(self) -> str | None:
        return self.claims.get("email")

    def require_uid(self) -> str:
        if not self.uid:
            raise UnauthenticatedError("Sign in to call this function.")
        return self.uid


def correlation_id_from(headers: Any) -> str:
    value = (headers.get(CORRELATION_HEADER) if headers is not None else None) or ""
    return value if _CORRELATION_RE.match(value) else uuid.uuid4().hex


domain_of = options.domain_of  # where it lived first; kept for imports of it from here


def check_caller(spec: CallableSpec, uid: str | None, claims: dict[str, Any]) -> None:
    """Identity and role, before any work. Pure, for unit tests."""
    if spec.auth and not uid:
        raise UnauthenticatedError("Sign in to call this function.")
    # Production verifies signature and expiry in the SDK; the Auth emulator's tokens are
    # checked for neither, so expiry is checked here too (cheap, and the same everywhere).
    if uid and isinstance(claims.get("exp"), (int, float)) and claims["exp"] < time.time():
        raise UnauthenticatedError("The ID token has expired; sign in again.")
    if spec.roles is not None:
        role = claims.get("role") or "member"
        if role not in spec.roles:
            raise PermissionDeniedError(
                f"This function needs one of the roles: {', '.join(sorted(spec.roles))}.",
                details={"required_roles": sorted(spec.roles)},
            )


# Why a token is refused after its account changed, as FlutterFlow shows it (Firebase's own codes).
REVOKED = {
    "user-not-found": "This account no longer exists. Sign in again.",
    "user-disabled": "This account is disabled.",
    "id-token-revoked": "This sign-in is no longer valid (a role change or a sign-out everywhere). Sign in again.",
}


def revocation_reason(claims: dict[str, Any], *, exists: bool, disabled: bool, valid_after_ms: int | None) -> str | None:
    """Why a verified token no longer speaks for its account, or None. Pure.

    ``valid_after_ms`` is the account's "tokens valid after" stamp (Auth's ``validSince``),
    which revoking refresh tokens moves to now: a role change, disabling, a sign-out everywhere."""
    if not exists:
        return "user-not-found"
    if disabled:
        return "user-disabled"
    iat = claims.get("iat")
    if valid_after_ms and (not isinstance(iat, (int, float)) or iat * 1000 < valid_after_ms):
        return "id-token-revoked"
    return None


def check_not_revoked(uid: str, claims: dict[str, Any]) -> None:
    """Revoked means revoked: the account must still exist, be enabled, and not have
    revoked its sessions since the token was issued (``verify_id_token(check_revoked=True)``
    does the same lookup; the SDK has verified the token itself already). The cost is one
    Auth lookup (no Firestore read) per state-changing or role-gated call; read-only callables
    that need no role skip it."""
    auth = clients.auth()
    try:
        user = auth.get_user(uid, app=clients.app())
    except auth.UserNotFoundError:
        reason = revocation_reason(claims, exists=False, disabled=False, valid_after_ms=None)
    else:
        reason = revocation_reason(claims, exists=True, disabled=bool(user.disabled),
                                   valid_after_ms=user.tokens_valid_after_timestamp)
    if reason is not None:
        raise UnauthenticatedError(REVOKED[reason], details={"reason": reason})


def callable_function(
    *,
    request: type[Req],
    response: type[Resp],
    roles: Iterable[str] | None = None,
    auth: bool = True,
    idempotent: bool = False,
    own_idempotency: bool = False,
    read_only: bool = False,
    enforce_app_check: bool = False,
    **https_options: Any,
) -> Callable[[Callable[[CallContext, Req], Resp | dict]], Callable]:
    if idempotent and "idempotency_key" not in request.model_fields:
        raise TypeError(f"{request.__name__} needs an idempotency_key field to be idempotent")

    def decorate(handler: Callable[[CallContext, Req], Resp | dict]) -> Callable:
        from firebase_functions import https_fn  # noqa: PLC0415

        spec = CallableSpec(
            name=handler.__name__,
            domain=domain_of(handler.__module__),
            request=request,
            response=response,
            roles=frozenset(roles) if roles is not None else None,
            auth=auth,
            idempotent=idempotent,
            own_idempotency=own_idempotency,
            read_only=read_only,
            summary=(handler.__doc__ or handler.__name__).strip().splitlines()[0],
        )
        CALLABLES[spec.name] = spec

        def endpoint(req: https_fn.CallableRequest) -> Any:
            raw = getattr(req, "raw_request", None)
            headers = getattr(raw, "headers", None)
            corr = correlation_id_from(headers)
            uid = req.auth.uid if req.auth else None
            claims = dict(req.auth.token) if req.auth else {}
            timer = log.Timer()
            with log.bind(domain=spec.domain, function=spec.name, correlation_id=corr, uid=uid), \
                    metering.metered() as meter, \
                    tracing.span(spec.name, parent=tracing.from_headers(headers), entry=True, kind="callable") as span:
                try:
                    result = invoke(spec, handler, uid, claims, corr, req.data)
                except BaseException as exc:  # noqa: BLE001 - the edge maps every error
                    code, _, _ = errors.describe(exc, corr)
                    span.attributes["code"] = code
                    if code == "internal":
                        span.status = "error"
                        log.report("callable failed unexpectedly", exc, latency_ms=timer.ms, **meter.fields())
                    else:
                        log.info("callable refused", code=code, latency_ms=timer.ms, **meter.fields(),
                                 error=str(exc)[:300])
                    raise errors.to_https_error(exc, corr) from None
                log.info("callable ok", latency_ms=timer.ms, **meter.fields())
                return result

        endpoint.__name__ = endpoint.__qualname__ = spec.name
        endpoint.__doc__ = handler.__doc__
        sdk_handler = options.trigger(https_fn.on_call, domain=spec.domain, enforce_app_check=enforce_app_check,
                                      **https_options)(endpoint)

        @functools.wraps(sdk_handler)
        def wrapped(request):
            # A body that is not JSON, or not {"data": ...}, is the caller's mistake: the SDK
            # would answer `internal` for some of them, so they are answered here first.
            if request.method == "POST" and (problem := body_problem(request.get_data(cache=True))):
                return invalid_body_response(problem)
            # The SDK verifies the ID token with the default app before our code
            # runs: build it on the first request (not at import).
            clients.app()
            return sdk_handler(request)

        wrapped.__flowsuite_callable__ = spec
        wrapped.__wrapped_handler__ = handler
        return wrapped

    return decorate


def body_problem(raw: bytes) -> str | None:
    """Why a callable's HTTP body is unusable, or None: it must be a JSON object holding
    ``data`` and nothing else (the callable protocol). Pure."""
    import json  # noqa: PLC0415

    try:
        body = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError):
        return "The request body is not JSON: send {\"data\": {...}}."
    if not isinstance(body, dict) or "data" not in body:
        return "The request body must be a JSON object {\"data\": {...}}."
    if set(body) != {"data"}:
        return "The request body may hold only \"data\"."
    return None


def invalid_body_response(problem: str):
    """The callable protocol's invalid-argument answer (HTTP 400), naming the body as the field."""
    import json  # noqa: PLC0415

    from flask import Response  # noqa: PLC0415

    error = {"status": "INVALID_ARGUMENT", "message": problem,
             "details": {"fields": [{"field": "data", "type": "invalid_body", "message": problem}]}}
    return Response(json.dumps({"error": error}), status=400, mimetype="application/json")


def invoke(
    spec: CallableSpec,
    handler: Callable,
    uid: str | None,
    claims: dict[str, Any],
    correlation_id: str,
    data: Any,
) -> dict[str, Any]:
    """Runs one call after the SDK decoded it: checks, parse, idempotency, answer."""
    check_caller(spec, uid, claims)
    if uid and spec.checks_revocation:
        check_not_revoked(uid, claims)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise errors.InvalidArgumentError(
            "Invalid request: data must be an object",
            fields=[{"field": "data", "type": "dict_type", "message": "must be an object"}],
        )
    try:
        parsed = spec.request.model_validate(data)
    except ValidationError as exc:
        raise errors.invalid_request(exc) from None
    key = getattr(parsed, "idempotency_key", None) if spec.idempotent else None
    ctx = CallContext(
        function=spec.name,
        domain=spec.domain,
        uid=uid,
        claims=claims,
        correlation_id=correlation_id,
        idempotency_key=key,
    )

    def compute() -> dict[str, Any]:
        answer = handler(ctx, parsed)
        model = answer if isinstance(answer, spec.response) else spec.response.model_validate(answer)
        return model.model_dump(mode="json")

    if not spec.idempotent or spec.own_idempotency:
        return compute()
    payload = parsed.model_dump(mode="json", exclude={"idempotency_key"})
    return idempotency.run(uid=uid, function=spec.name, key=key, payload=payload, compute=compute,
                           timeout_seconds=options.timeout_of(spec.name))
