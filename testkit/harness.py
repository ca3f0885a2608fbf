"""Clients for tests against the real emulators: admin Firestore, Auth, callables,
the app's own Firestore REST client (rules enforced), and resets.

Everything reads the addresses that ``python -m devtools.suite exec`` exports. When
they are missing the test fails loudly: integration tests never skip.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests

PROJECT = os.environ.get("GCLOUD_PROJECT", "demo-flowsuite")
SESSION = requests.Session()


def need(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(
            f"{var} is not set: integration tests need the emulator suite. "
            "Run them with `make test` or `make integration` "
            "(`python -m devtools.suite exec --generated-domain -- pytest tests/integration`).",
            pytrace=False,
        )
    return value


def firestore_host() -> str:
    return need("FIRESTORE_EMULATOR_HOST")


def auth_host() -> str:
    return need("FIREBASE_AUTH_EMULATOR_HOST")


def functions_url() -> str:
    return need("FLOWSUITE_FUNCTIONS_URL")


def admin_db():
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    firestore_host()
    return firestore.Client(project=PROJECT, credentials=AnonymousCredentials())


# ---- reset ---------------------------------------------------------------

def reset_emulators() -> None:
    for attempt in range(5):
        r = SESSION.delete(f"http://{firestore_host()}/emulator/v1/projects/{PROJECT}/databases/(default)/documents")
        if r.status_code != 409 or attempt == 4:  # 409: a late trigger's transaction still holds a lock
            break
        time.sleep(0.5)
    r.raise_for_status()
    r = SESSION.delete(f"http://{auth_host()}/emulator/v1/projects/{PROJECT}/accounts")
    r.raise_for_status()


# ---- auth ------------------------------------------------------------------

@dataclass
class User:
    uid: str
    email: str
    password: str
    id_token: str

    @property
    def claims(self) -> dict[str, Any]:
        payload = self.id_token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    @property
    def ref_path(self) -> str:
        return f"projects/{PROJECT}/databases/(default)/documents/users/{self.uid}"


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _identity(path: str, body: dict[str, Any], *, admin: bool = False) -> dict[str, Any]:
    url = f"http://{auth_host()}/identitytoolkit.googleapis.com/v1/{path}"
    headers = {"Authorization": "Bearer owner"} if admin else {}
    reset = False
    for attempt in range(3):
        r = SESSION.post(url, params={"key": "fake-api-key"}, json=body, headers=headers, timeout=30)
        message = r.json().get("error", {}).get("message", r.text) if r.status_code >= 400 else ""
        # Under load the functions emulator sometimes resets its connection to a blocking
        # function's worker; an app's user would try again.
        if "ECONNRESET" in message and attempt < 2:
            time.sleep(1)
            reset = True
            continue
        if reset and path == "accounts:signUp" and message.startswith("EMAIL_EXISTS"):
            # the reset came after the account was made (seen in CI): the retry signs in to it
            return _identity("accounts:signInWithPassword",
                             {"email": body["email"], "password": body["password"], "returnSecureToken": True})
        if r.status_code >= 400:
            raise AuthError(r.status_code, message)
        return r.json()
    raise AssertionError("unreachable")


def sign_up(email: str | None = None, password: str = "secret-password", display_name: str | None = None) -> User:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": password, "returnSecureToken": True}
    if display_name:
        body["displayName"] = display_name
    out = _identity("accounts:signUp", body)
    return User(out["localId"], email, password, out["idToken"])


def sign_in(email: str, password: str) -> User:
    out = _identity("accounts:signInWithPassword", {"email": email, "password": password, "returnSecureToken": True})
    return User(out["localId"], email, password, out["idToken"])


def sign_in_with_google(email: str, *, verified: bool = True, name: str | None = None) -> User:
    """Signs in (signing up the first time) with a Google account, through the Auth emulator's
    fake IdP: a Google email comes verified, so blocking functions see ``email_verified``."""
    claims = {"sub": f"google-{uuid.uuid5(uuid.NAMESPACE_URL, email).hex}", "email": email,
              "email_verified": verified, **({"name": name} if name else {})}
    body = {"postBody": f"providerId=google.com&id_token={quote(json.dumps(claims))}",
            "requestUri": "http://localhost", "returnSecureToken": True, "returnIdpCredential": True}
    out = _identity("accounts:signInWithIdp", body)
    return User(out["localId"], email, "", out["idToken"])


def verify_email(uid: str) -> None:
    """Marks an account's email verified, as the link in a verification email would."""
    _identity(f"projects/{PROJECT}/accounts:update", {"localId": uid, "emailVerified": True}, admin=True)


def set_claims(user: User, claims: dict[str, Any]) -> User:
    """Sets custom claims with the admin API and returns the user with a fresh token.

    A role is written to the server-side record too (``users/{uid}.role``), as
    ``identity_set_role`` does, so that the profile and the claim agree (a sign-in
    never copies the profile's role to the claim).
    """
    if "role" in claims:
        admin_db().document(f"users/{user.uid}").set({"role": claims["role"]}, merge=True)
    _identity(
        f"projects/{PROJECT}/accounts:update",
        {"localId": user.uid, "customAttributes": json.dumps(claims)},
        admin=True,
    )
    return sign_in(user.email, user.password)


def user_with_role(role: str) -> User:
    return set_claims(sign_up(), {"role": role})


def token_with(user: User, **claims: Any) -> str:
    """The user's ID token with some claims changed. The Auth emulator's tokens are unsigned
    and the Admin SDK does not check their signature under the emulator, so this stands for
    a token the real service issued with those claims (an old sign-in, an expired token)."""
    header, payload, signature = (user.id_token.split(".") + [""])[:3]
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(claims)
    encoded = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{header}.{encoded}.{signature}"


# ---- callables ---------------------------------------------------------------

class CallableError(Exception):
    def __init__(self, http_status: int, status: str, message: str, details: Any):
        super().__init__(f"{status} ({http_status}): {message} {details!r}")
        self.http_status = http_status
        self.status = status
        self.message = message
        self.details = details or {}

    @property
    def code(self) -> str:
        return self.status.lower().replace("_", "-")

    @property
    def fields(self) -> list[str]:
        return [f["field"] for f in self.details.get("fields", [])]


def call_raw(name: str, body: Any, token: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    return SESSION.post(f"{functions_url()}/{name}", data=json.dumps(body), headers=hdrs, timeout=60)


def call(name: str, data: Any = None, user: User | str | None = None, headers: dict[str, str] | None = None,
         *, resets: int = 2) -> Any:
    """Calls a callable as the Firebase SDKs do; returns ``result`` or raises CallableError.

    A call with an idempotency key whose connection the functions emulator's proxy dropped
    (``{"code": "ECONNRESET"}``: it lost its worker's socket, a few times in a full run, seen in
    CI) is sent again with the same body up to ``resets`` times, as an app retries a dropped
    request with the same key: the callable answers a repeat from its record, so nothing
    happens twice. A call without a key (some change state: a cancel, a replay, a sweep) is
    never repeated: its drop raises TransportError. Callers that count calls or drops pass
    ``resets=0``."""
    token = user.id_token if isinstance(user, User) else user
    for attempt in range(resets + 1):
        r = call_raw(name, {"data": data if data is not None else {}}, token, headers)
        try:
            body = r.json()
        except ValueError as exc:
            raise AssertionError(f"{name} answered {r.status_code} with a non-JSON body: {r.text[:500]}") from exc
        if "error" in body and isinstance(body["error"], dict):
            err = body["error"]
            raise CallableError(r.status_code, err.get("status", ""), err.get("message", ""), err.get("details"))
        if r.status_code == 200:
            return body["result"]
        if attempt < resets and body.get("code") == "ECONNRESET" and isinstance(data, dict) and data.get("idempotency_key"):
            time.sleep(0.5 * (attempt + 1))
            continue
        raise TransportError(r.status_code, body)  # the emulator's own proxy failed, not our function
    raise AssertionError("unreachable")


class TransportError(Exception):
    """The request never got a callable's answer (a network or emulator proxy failure)."""


def call_retrying(name: str, data: Any, user: User, attempts: int = 4, *, aborted: bool = True) -> Any:
    """What a careful app does: retry transport failures and (unless ``aborted`` is False)
    `aborted` with the same payload; the idempotency key in it makes the retry safe."""
    for attempt in range(attempts):
        try:
            return call(name, data, user=user)
        except TransportError:
            pass
        except CallableError as err:
            if not aborted or err.code != "aborted" or attempt == attempts - 1:
                raise
        time.sleep(0.2 * (attempt + 1))
    return call(name, data, user=user)


# ---- the app's Firestore client (REST, rules enforced) -------------------------

def encode(value: Any) -> dict[str, Any]:
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, dt.datetime):
        return {"timestampValue": value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}
    if isinstance(value, Ref):
        return {"referenceValue": value.path}
    if isinstance(value, list):
        return {"arrayValue": {"values": [encode(v) for v in value]}}
    if isinstance(value, dict):
        return {"mapValue": {"fields": {k: encode(v) for k, v in value.items()}}}
    raise TypeError(type(value))


def decode(value: dict[str, Any]) -> Any:
    (kind, raw), = value.items()
    if kind == "integerValue":
        return int(raw)
    if kind == "arrayValue":
        return [decode(v) for v in raw.get("values", [])]
    if kind == "mapValue":
        return {k: decode(v) for k, v in raw.get("fields", {}).items()}
    if kind == "referenceValue":
        return Ref(raw)
    return raw


@dataclass(frozen=True)
class Ref:
    path: str  # projects/{p}/databases/(default)/documents/...

    @classmethod
    def to(cls, doc_path: str) -> "Ref":
        return cls(f"projects/{PROJECT}/databases/(default)/documents/{doc_path}")


class Denied(Exception):
    pass


class AppClient:
    """Firestore as a FlutterFlow app sees it: the REST API with the user's ID token."""

    def __init__(self, user: User | None):
        self.user = user
        self.base = f"http://{firestore_host()}/v1/projects/{PROJECT}/databases/(default)/documents"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.user.id_token}"} if self.user else {}

    def _check(self, r: requests.Response) -> dict[str, Any]:
        if r.status_code == 403:
            raise Denied(r.json().get("error", {}).get("message", "denied"))
        if r.status_code >= 400:
            raise AssertionError(f"{r.status_code}: {r.text[:500]}")
        return r.json() if r.text else {}

    def get(self, path: str) -> dict[str, Any] | None:
        r = SESSION.get(f"{self.base}/{path}", headers=self._headers(), timeout=30)
        if r.status_code == 404:
            return None
        doc = self._check(r)
        return {k: decode(v) for k, v in doc.get("fields", {}).items()}

    def create(self, collection: str, doc_id: str, data: dict[str, Any]) -> None:
        r = SESSION.post(
            f"{self.base}/{collection}", params={"documentId": doc_id},
            json={"fields": {k: encode(v) for k, v in data.items()}}, headers=self._headers(), timeout=30,
        )
        self._check(r)

    def set(self, path: str, data: dict[str, Any]) -> None:
        r = SESSION.patch(f"{self.base}/{path}", json={"fields": {k: encode(v) for k, v in data.items()}},
                          headers=self._headers(), timeout=30)
        self._check(r)

    def update(self, path: str, data: dict[str, Any]) -> None:
        params = [("updateMask.fieldPaths", k) for k in data] + [("currentDocument.exists", "true")]
        r = SESSION.patch(f"{self.base}/{path}", params=params,
                          json={"fields": {k: encode(v) for k, v in data.items()}}, headers=self._headers(), timeout=30)
        self._check(r)

    def delete(self, path: str) -> None:
        self._check(SESSION.delete(f"{self.base}/{path}", headers=self._headers(), timeout=30))

    def query(self, collection: str, *, where: list[tuple[str, str, Any]] = (), parent: str = "",
              order_by: str | None = None, descending: bool = False, limit: int | None = None) -> list[dict]:
        ops = {"==": "EQUAL", "<": "LESS_THAN", "<=": "LESS_THAN_OR_EQUAL", ">": "GREATER_THAN",
               ">=": "GREATER_THAN_OR_EQUAL", "in": "IN", "array-contains": "ARRAY_CONTAINS"}
        query: dict[str, Any] = {"from": [{"collectionId": collection}]}
        filters = [{"fieldFilter": {"field": {"fieldPath": f}, "op": ops[o], "value": encode(v)}} for f, o, v in where]
        if len(filters) == 1:
            query["where"] = filters[0]
        elif filters:
            query["where"] = {"compositeFilter": {"op": "AND", "filters": filters}}
        if order_by:
            query["orderBy"] = [{"field": {"fieldPath": order_by}, "direction": "DESCENDING" if descending else "ASCENDING"}]
        if limit:
            query["limit"] = limit
        url = f"{self.base}/{parent}:runQuery" if parent else f"{self.base}:runQuery"
        rows = self._check(SESSION.post(url, json={"structuredQuery": query}, headers=self._headers(), timeout=30))
        return [{k: decode(v) for k, v in row["document"].get("fields", {}).items()}
                for row in rows if "document" in row]


# ---- waiting -------------------------------------------------------------------

def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """Polls ``check`` until it returns something truthy; fails with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last value: {last!r}")


def pending_deliveries(db) -> dict[str, tuple[str, Any]]:
    """Every delivery not processed yet, {delivery id: (status, error)}: the records that are
    not ``processed`` (in flight, failed, dead) and, counted from each event's subscribers,
    those whose trigger has not started yet (no record, status "not started")."""
    from flowsuite.core import bus  # noqa: PLC0415 - the suite's code, on sys.path once the harness runs

    records = {s.id: s.to_dict() for s in db.collection("deliveries").stream()}
    expected = {bus.delivery_id(e.id, s.name) for e in db.collection_group("events").stream()
                for s in bus.subscribers_of((e.to_dict() or {}).get("type"))}
    pending = {i: (r.get("status"), r.get("error")) for i, r in records.items() if r["status"] != "processed"}
    return pending | {i: ("not started", None) for i in expected - records.keys()}


def settle(db, *, timeout: float = 300.0) -> list[str]:
    """For benchmarks: waits until no delivery is in flight or not started (a dead letter never
    settles and is not waited for), at most ``timeout`` s; returns the ones still pending."""
    deadline = time.monotonic() + timeout
    while (pending := sorted(i for i, (status, _) in pending_deliveries(db).items() if status != "dead")):
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    return pending


def every_delivery_processed(db, *, timeout: float = 45.0) -> None:
    """Waits until every event in Firestore is delivered to each of its subscribers and
    processed (nothing in flight, nothing failed or dead). Waiting only for the delivery
    records there are would let a trigger that has not started yet run later, in another
    test's world (after the reset)."""
    def done():
        pending = pending_deliveries(db)
        assert not pending, pending  # the failure names what is still pending
        return True
    eventually(done, timeout=timeout, what="every delivery processed")


def doc(db, path: str) -> dict[str, Any] | None:
    snap = db.document(path).get()
    return snap.to_dict() if snap.exists else None


def create_account_without_blocking_functions(email: str, password: str = "secret-password",
                                              verified: bool = False) -> User:
    """An account made with the Admin API (as the console or an Admin SDK script would):
    blocking functions do not run, so no profile exists yet."""
    out = _identity(f"projects/{PROJECT}/accounts", {"email": email, "password": password, "emailVerified": verified},
                    admin=True)
    user = sign_in(email, password)
    assert user.uid == out["localId"]
    return user


def delete_account_outside_the_suite(uid: str) -> None:
    _identity(f"projects/{PROJECT}/accounts:delete", {"localId": uid}, admin=True)


def account_exists(uid: str) -> bool:
    out = _identity(f"projects/{PROJECT}/accounts:lookup", {"localId": [uid]}, admin=True)
    return bool(out.get("users"))


def claims_of(uid: str) -> dict[str, Any]:
    """The account's custom claims as Auth holds them now (not as an ID token carries them)."""
    out = _identity(f"projects/{PROJECT}/accounts:lookup", {"localId": [uid]}, admin=True)
    return json.loads((out.get("users") or [{}])[0].get("customAttributes") or "{}")


def mails_to(address: str) -> list:
    """Messages the SMTP sink (aiosmtpd, Maildir) received for an address."""
    import email
    import mailbox
    from email import policy

    box = mailbox.Maildir(need("FLOWSUITE_MAILDIR"), create=False)
    parsed = [email.message_from_bytes(m.as_bytes(), policy=policy.default) for m in box]
    return [m for m in parsed if address.lower() in (m["To"] or "").lower()]


def pushes_to(db, token: str) -> list[dict]:
    """What the recording push adapter would have sent to a token (FCM has no emulator)."""
    return [s.to_dict() for s in db.collection("_push_outbox").stream()
            if token in s.to_dict().get("tokens", []) + s.to_dict().get("rejected_tokens", [])]


def of_this_test(db, records: list[dict]) -> list[dict]:
    """Deliveries or dead letters whose event exists now. A trigger of an earlier test can
    still land after the reset; its event is gone, so it is not this test's."""
    return [r for r in records if r.get("event_path") and db.document(r["event_path"]).get().exists]


def log_lines(correlation_id: str) -> list[dict]:
    """The JSON log lines of every function the emulator ran that carry this correlation id."""
    path = need("FLOWSUITE_EMULATOR_LOG")
    lines = []
    with open(path, errors="replace") as handle:
        for raw in handle:
            start = raw.find("{")
            if start < 0 or correlation_id not in raw:
                continue
            try:
                lines.append(json.loads(raw[start:]))
            except ValueError:
                continue
    return lines
