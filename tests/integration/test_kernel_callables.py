"""Typed callables on the functions emulator: identity, roles, errors, idempotency."""

from __future__ import annotations

import concurrent.futures as cf
import uuid

import pytest

from testkit import harness
from testkit.harness import CallableError, call, call_raw

CODES = ["invalid-argument", "unauthenticated", "permission-denied", "not-found",
         "failed-precondition", "already-exists", "resource-exhausted"]


def probes_sent(db) -> int:
    """Probes this test sent (a late trigger of an earlier test may touch others)."""
    return sum(1 for snap in db.collection("ops_probes").stream() if "probe_id" in snap.to_dict())


def key() -> str:
    return uuid.uuid4().hex


def test_missing_login_is_unauthenticated():
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": key()})
    assert err.value.code == "unauthenticated" and err.value.http_status == 401


def test_forged_token_is_unauthenticated():
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": key()}, user="not-a-jwt")
    assert err.value.code == "unauthenticated"


def test_wrong_role_is_permission_denied(member):
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": key()}, user=member)
    assert err.value.code == "permission-denied"
    assert err.value.details["required_roles"] == ["admin"]


def test_bad_input_names_each_failing_field(admin):
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": "x", "note": 5, "surprise": True}, user=admin)
    assert err.value.code == "invalid-argument"
    assert set(err.value.fields) == {"idempotency_key", "note", "surprise"}
    assert all(set(f) == {"field", "type", "message"} for f in err.value.details["fields"])


def test_data_that_is_not_an_object_is_invalid(admin):
    r = call_raw("ops_send_probe", {"data": [1, 2]}, admin.id_token)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize("code", CODES)
def test_every_domain_error_reaches_the_caller_with_its_code(admin, code):
    with pytest.raises(CallableError) as err:
        call("ops_diagnose", {"code": code}, user=admin)
    assert err.value.code == code
    assert err.value.details["correlation_id"]


def test_an_unexpected_exception_is_internal_without_details(admin):
    with pytest.raises(CallableError) as err:
        call("ops_diagnose", {"code": "internal"}, user=admin, headers={"X-Correlation-Id": "trace-internal-0001"})
    assert err.value.code == "internal" and err.value.http_status == 500
    assert "sk_live" not in err.value.message
    assert err.value.details == {"correlation_id": "trace-internal-0001"}


def test_a_repeat_returns_the_first_answer_and_has_one_effect(admin, db):
    k = key()
    first = call("ops_send_probe", {"idempotency_key": k, "note": "once"}, user=admin)
    second = call("ops_send_probe", {"idempotency_key": k, "note": "once"}, user=admin)
    assert first == second
    assert probes_sent(db) == 1


def test_a_reused_key_with_another_payload_is_refused(admin, db):
    k = key()
    call("ops_send_probe", {"idempotency_key": k, "note": "first"}, user=admin)
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": k, "note": "tampered"}, user=admin)
    assert err.value.code == "invalid-argument" and err.value.fields == ["idempotency_key"]
    assert probes_sent(db) == 1


def test_keys_are_per_user(db):
    a, b = harness.user_with_role("admin"), harness.user_with_role("admin")
    k = key()
    ra = call("ops_send_probe", {"idempotency_key": k}, user=a)
    rb = call("ops_send_probe", {"idempotency_key": k}, user=b)
    assert ra["probe_id"] != rb["probe_id"]


def test_concurrent_repeats_of_one_key_produce_one_effect(admin, db):
    k = key()
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: call("ops_send_probe", {"idempotency_key": k}, user=admin), range(8)))
    assert len({a["probe_id"] for a in answers}) == 1
    assert probes_sent(db) == 1
    assert len(list(db.collection("topics/ops.probe/events").stream())) == 1


def test_a_failed_call_releases_its_key(admin, member, db):
    from flowsuite.core import idempotency

    k = key()
    for _ in range(2):  # the repeat runs again (a key left in progress would answer failed-precondition)
        with pytest.raises(CallableError) as err:
            call("payments_create_intent", {"order_id": "no-such-order", "idempotency_key": k}, user=member)
        assert err.value.code == "not-found"
        assert list(db.collection(idempotency.COLLECTION).stream()) == []
    # the same, in-process: a failed idempotent call leaves no record, and the key runs again
    calls = []

    def compute():
        calls.append(1)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        idempotency.run(uid=admin.uid, function="t", key=k, payload={}, compute=compute, db=db)
    assert list(db.collection(idempotency.COLLECTION).stream()) == []
    assert idempotency.run(uid=admin.uid, function="t", key=k, payload={}, compute=lambda: {"ok": 1}, db=db) == {"ok": 1}


def test_the_correlation_id_from_the_header_reaches_the_event(admin, db):
    out = call("ops_send_probe", {"idempotency_key": key()}, user=admin, headers={"X-Correlation-Id": "checkout-abc-123"})
    assert out["correlation_id"] == "checkout-abc-123"
    event = harness.doc(db, f"topics/ops.probe/events/{out['event_id']}")
    assert event["correlation_id"] == "checkout-abc-123"


def test_an_expired_token_is_unauthenticated(admin):
    import time

    now = int(time.time())
    expired = harness.token_with(admin, iat=now - 7200, exp=now - 3600, auth_time=now - 7200)
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": key()}, user=expired)
    assert err.value.code == "unauthenticated"


def test_a_token_for_another_project_is_unauthenticated(admin):
    other = harness.token_with(admin, aud="another-project", iss="https://securetoken.google.com/another-project")
    with pytest.raises(CallableError) as err:
        call("ops_send_probe", {"idempotency_key": key()}, user=other)
    assert err.value.code == "unauthenticated"


# Ids Firestore reserves ("__...__", ".", "..") are refused at the edge with the field, never `internal`.
RESERVED = [
    ("orders_cancel", {"order_id": "__x__"}, "order_id"),
    ("orders_mark_fulfilled", {"order_id": "__name__"}, "order_id"),
    ("orders_archive_product", {"product_id": "__"}, "product_id"),
    ("orders_place", {"items": [{"product_id": "__name__", "quantity": 1}]}, "items.0.product_id"),
    ("payments_create_intent", {"order_id": "__x__"}, "order_id"),
    ("identity_set_role", {"uid": "__x__", "role": "staff"}, "uid"),
    ("identity_disable_user", {"uid": "..", "disabled": True}, "uid"),
    ("identity_delete_account", {"uid": "."}, "uid"),
    ("identity_sign_out_everywhere", {"uid": "__x__"}, "uid"),
    ("ops_replay_dead_letters", {"ids": ["__a:b__"]}, "ids.0"),
]


@pytest.mark.parametrize(("name", "data", "field"), RESERVED, ids=[r[0] for r in RESERVED])
def test_a_reserved_document_id_is_an_invalid_argument_naming_its_field(admin, db, name, data, field):
    import main  # noqa: F401 - registers every callable
    from flowsuite.core.callables import CALLABLES

    if CALLABLES[name].idempotent:
        data = {**data, "idempotency_key": key()}
    with pytest.raises(CallableError) as err:
        call(name, data, user=admin)
    assert err.value.code == "invalid-argument" and err.value.http_status == 400
    assert field in err.value.fields, err.value.fields
    assert "reserved" in err.value.message or "pattern" in err.value.message
    assert harness.account_exists(admin.uid)
