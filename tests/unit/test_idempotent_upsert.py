"""orders_upsert_product keeps its idempotency key in the transaction of its effect (review
finding 3): a retry after a crash either finds nothing written and runs again, or replays the
answer, so a ``stock_delta`` is never added twice and a new product never created twice. No I/O:
``testkit.memstore`` stands in for Firestore (the integration tests cover the real one)."""

from __future__ import annotations

import datetime as dt

import pytest
from flowsuite.core import clock, idempotency
from flowsuite.core.errors import FailedPreconditionError, InvalidArgumentError
from flowsuite.orders import service as orders
from flowsuite.orders.models import UpsertProduct

from testkit.memstore import Store

STAFF = "staff-1"
KEY = "key-0001"


def upsert(store: Store, key: str = KEY, **fields) -> dict:
    req = UpsertProduct(**{"name": "Mug", "price": 1250, "currency": "usd", "idempotency_key": key, **fields})
    return orders.upsert_product(store, req, uid=STAFF)


def mug(stock: int = 5) -> dict:
    return {"products/mug": {"name": "Mug", "price": 1250, "currency": "usd", "active": True, "stock": stock,
                             "stock_shards": 0}}


def records(store: Store) -> list[dict]:
    return [d for p, d in store.docs.items() if p.startswith(f"{idempotency.COLLECTION}/")]


def test_a_repeated_stock_delta_is_added_once_and_answered_the_same():
    store = Store(mug(5))
    first = upsert(store, product_id="mug", stock_delta=100)
    assert first["stock"] == 105 and store.docs["products/mug"]["stock"] == 105
    assert upsert(store, product_id="mug", stock_delta=100) == first  # the retry: replayed, not applied
    assert store.docs["products/mug"]["stock"] == 105
    [record] = records(store)
    assert (record["status"], record["response"], record["uid"], record["function"]) == \
        ("completed", first, STAFF, "orders_upsert_product")


def test_a_call_that_dies_before_its_commit_wrote_nothing_and_its_retry_runs_once():
    store = Store(mug(5))
    store.crash_at_commit = 1
    with pytest.raises(ConnectionError):
        upsert(store, product_id="mug", stock_delta=100)
    assert store.docs["products/mug"]["stock"] == 5 and records(store) == []  # no key left in progress
    assert upsert(store, product_id="mug", stock_delta=100)["stock"] == 105
    assert upsert(store, product_id="mug", stock_delta=100)["stock"] == 105
    assert store.docs["products/mug"]["stock"] == 105


def test_a_new_product_is_created_once_under_one_key():
    store = Store()
    first = upsert(store, key="key-new-0001", stock=3)
    assert upsert(store, key="key-new-0001", stock=3) == first
    assert [p for p in store.docs if p.startswith("products/")] == [f"products/{first['product_id']}"]


def test_a_refused_edit_leaves_no_record_and_the_key_runs_again():
    store = Store(mug(5))
    with pytest.raises(FailedPreconditionError):
        upsert(store, product_id="mug", stock=10, expected_stock=4)  # the form loaded a stale stock
    assert records(store) == [] and store.docs["products/mug"]["stock"] == 5
    with pytest.raises(FailedPreconditionError):
        upsert(store, product_id="mug", stock=10, expected_stock=4)  # not a replayed refusal: checked again


def test_a_key_reused_with_another_payload_is_refused():
    store = Store(mug(5))
    upsert(store, product_id="mug", stock_delta=1)
    with pytest.raises(InvalidArgumentError) as err:
        upsert(store, product_id="mug", stock_delta=2)
    assert err.value.details["fields"][0]["field"] == "idempotency_key"
    assert store.docs["products/mug"]["stock"] == 6


def in_progress(store: Store, key: str, payload: dict, locked_until: dt.datetime) -> None:
    """A record ``idempotency.run`` left in progress (a call in flight across the deploy)."""
    rid = idempotency.record_id(STAFF, "orders_upsert_product", key)
    store.docs[f"{idempotency.COLLECTION}/{rid}"] = {
        "status": "in_progress", "uid": STAFF, "function": "orders_upsert_product", "token": "t",
        "payload_hash": idempotency.payload_hash(payload), "locked_until": locked_until,
        "expires_at": locked_until + dt.timedelta(hours=24)}


def test_a_key_run_left_in_progress_waits_for_its_lock_then_runs():
    payload = UpsertProduct(product_id="mug", name="Mug", price=1250, currency="usd", stock_delta=100,
                            idempotency_key=KEY).model_dump(mode="json", exclude={"idempotency_key"})
    store = Store(mug(5))
    in_progress(store, KEY, payload, clock.utcnow() + dt.timedelta(minutes=5))
    with pytest.raises(FailedPreconditionError) as err:
        upsert(store, product_id="mug", stock_delta=100)
    assert err.value.details["reason"] == "idempotency_in_progress" and store.docs["products/mug"]["stock"] == 5
    in_progress(store, KEY, payload, clock.utcnow() - dt.timedelta(seconds=1))  # its holder died
    assert upsert(store, product_id="mug", stock_delta=100)["stock"] == 105
    assert records(store)[0]["status"] == "completed"
