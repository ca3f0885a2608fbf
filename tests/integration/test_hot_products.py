"""Flash sales on the real emulators: a hot product's stock in shards (products/{id}/stock_shards/{k}).

Shards are reserved optimistically (read outside the order's transaction, written with a
``last_update_time`` precondition): the tests below check that a shard another buyer wrote
in between refuses the commit and writes nothing, and that concurrent buyers never oversell.
"""

from __future__ import annotations

import concurrent.futures as cf
import uuid

import pytest
from flowsuite.orders import service
from flowsuite.payments.events import PaymentCanceled, PaymentRefunded, PaymentSucceeded

from testkit import harness
from testkit.harness import AppClient, CallableError, Denied, call, eventually
from testkit.shop import latecomers_sell_out, order, place, product, publish, rush, stock


def hot_product(staff, *, stock: int, shards: int, price: int = 900) -> str:
    out = call("orders_upsert_product", {"name": "Drop", "price": price, "currency": "usd", "stock": stock,
                                         "stock_shards": shards, "idempotency_key": uuid.uuid4().hex}, user=staff)
    assert out["stock_shards"] == shards and out["stock"] == stock
    return out["product_id"]


def shard_levels(db, product_id: str) -> dict[str, int]:
    return {s.id: s.get("stock") for s in db.collection(f"products/{product_id}/stock_shards").stream()}


def test_staff_mark_a_product_hot_and_its_stock_is_split(staff, db):
    item = hot_product(staff, stock=20, shards=8)
    levels = shard_levels(db, item)
    assert sorted(levels) == [str(k) for k in range(8)] and sum(levels.values()) == 20
    assert harness.doc(db, f"products/{item}")["stock_shards"] == 8
    # an edit of other fields keeps the shards; fewer shards later: the ones it no longer has go
    # (the stock, read from the shards, is guarded like any stock edit); 0 puts it back on the product
    call("orders_upsert_product", {"product_id": item, "name": "Drop!", "price": 900, "currency": "usd",
                                   "idempotency_key": uuid.uuid4().hex}, user=staff)
    assert harness.doc(db, f"products/{item}")["stock_shards"] == 8 and sum(shard_levels(db, item).values()) == 20
    call("orders_upsert_product", {"product_id": item, "name": "Drop", "price": 900, "currency": "usd", "stock": 6,
                                   "expected_stock": 20, "stock_shards": 3, "idempotency_key": uuid.uuid4().hex},
         user=staff)
    assert sorted(shard_levels(db, item)) == ["0", "1", "2"] and sum(shard_levels(db, item).values()) == 6
    call("orders_upsert_product", {"product_id": item, "name": "Drop", "price": 900, "currency": "usd",
                                   "stock_delta": 0, "stock_shards": 0, "idempotency_key": uuid.uuid4().hex}, user=staff)
    assert shard_levels(db, item) == {} and stock(db, item) == 6


def test_concurrent_buyers_never_oversell_a_hot_product_and_sold_out_is_exact(staff, db):
    """Twelve buyers at once for six units on three shards: whatever the emulator's lock timeouts
    leave undecided (`aborted` after the app's retries), nothing is oversold; buying on until
    refused then sells exactly the six. The latency under a flash sale is `make bench`'s."""
    item = hot_product(staff, stock=6, shards=3)
    buyers = [harness.sign_up() for _ in range(12)]  # one order each: the unpaid-order limit is per user

    placed, refused = rush(item, buyers, threads=6)
    assert len(placed) <= 6 and {r.code for r in refused} <= {"failed-precondition", "aborted"}  # never `internal`
    assert all(r.details["available"] == 0 for r in refused if r.code == "failed-precondition")
    assert sum(shard_levels(db, item).values()) == 6 - len(placed)  # every unit is in a shard or an order
    assert latecomers_sell_out(item, 6 - len(placed)).code == "failed-precondition"
    assert sum(shard_levels(db, item).values()) == 0 and min(shard_levels(db, item).values()) == 0
    assert len(list(db.collection("orders").stream())) == 6
    service.refresh_hot_stock(db)  # what orders_refresh_hot_stock does every minute
    assert stock(db, item) == 0


def test_a_shard_taken_from_after_it_was_read_refuses_the_whole_commit(staff, member, db):
    """The interleaving two buyers of one shard produce, step by step: the later commit fails
    its precondition (FAILED_PRECONDITION, which place_order answers by placing again from
    fresh reads) and none of its writes land."""
    from google.cloud import firestore as gcf

    item = hot_product(staff, stock=4, shards=2)
    mine = service._reserve_hot(db, item, 2, 1)
    (k, take), = mine.plan.items()
    other = place(member, [(item, 2)])  # another buyer writes shards (likely this one) meanwhile
    theirs = shard_levels(db, item)
    if theirs[str(k)] == mine.levels[k]:  # they drew the other shard: a refund lands on this one instead
        service.shard_ref(db, item, k).update({"stock": gcf.Increment(1)})
        theirs = shard_levels(db, item)
    rest = service.shard_ref(db, item, 1 - k)  # a second write in the same commit

    @gcf.transactional
    def commit(txn):
        service._take_from_shards(txn, db, item, mine)
        txn.update(rest, {"stock": 99})

    with pytest.raises(Exception) as err:
        commit(db.transaction())
    assert service._stock_changed_meanwhile(err.value), repr(err.value)
    assert shard_levels(db, item) == theirs  # nothing of the commit written, the other shard included
    assert order(db, other["order_id"])["status"] == "pending_payment" and take == 1


def test_sold_out_is_exact_across_shards(staff, member, db):
    item = hot_product(staff, stock=3, shards=3)  # one unit in each shard
    out = place(member, [(item, 3)])  # no one shard holds 3: the order takes from all of them
    assert out["status"] == "pending_payment" and sum(shard_levels(db, item).values()) == 0
    with pytest.raises(CallableError) as err:
        place(harness.sign_up(), [(item, 1)])
    assert err.value.code == "failed-precondition" and err.value.details["available"] == 0
    assert order(db, out["order_id"])["items"][0]["stock_shards"] == 3


def test_an_order_larger_than_what_is_left_is_refused_with_the_exact_count(staff, member, db):
    item = hot_product(staff, stock=5, shards=4)
    with pytest.raises(CallableError) as err:
        place(member, [(item, 6)])
    assert err.value.code == "failed-precondition" and err.value.details["available"] == 5
    assert sum(shard_levels(db, item).values()) == 5


def test_cancel_refund_and_expiry_return_stock_to_a_shard(staff, member, db):
    item = hot_product(staff, stock=6, shards=3)
    cancelled = place(member, [(item, 2)])
    publish(db, PaymentCanceled(payment_id="pay-" + cancelled["order_id"], order_id=cancelled["order_id"],
                                uid=member.uid, reason="expired"))
    eventually(lambda: order(db, cancelled["order_id"])["status"] == "cancelled", what="cancelled")
    assert sum(shard_levels(db, item).values()) == 6

    refunded = place(member, [(item, 3)])
    publish(db, PaymentSucceeded(payment_id="pay-" + refunded["order_id"], order_id=refunded["order_id"],
                                 uid=member.uid, amount=refunded["total"], currency="usd"))
    eventually(lambda: order(db, refunded["order_id"])["status"] == "paid", what="paid")
    assert sum(shard_levels(db, item).values()) == 3
    publish(db, PaymentRefunded(payment_id="pay-" + refunded["order_id"], order_id=refunded["order_id"],
                                uid=member.uid, amount=refunded["total"], currency="usd"))
    eventually(lambda: order(db, refunded["order_id"])["status"] == "refunded", what="refunded")
    assert sum(shard_levels(db, item).values()) == 6 and sorted(shard_levels(db, item)) == ["0", "1", "2"]
    service.refresh_hot_stock(db)
    assert stock(db, item) == 6


def test_stock_released_after_staff_resplit_goes_where_the_product_keeps_it_now(staff, member, db):
    """Unpaid orders outlive a resplit (30 minutes to pay): what they give back lands in the
    product's current layout, never in a shard it no longer counts."""
    fewer = hot_product(staff, stock=20, shards=10)
    cold = hot_product(staff, stock=8, shards=4)
    first, second = place(member, [(fewer, 2)]), place(member, [(cold, 3)])
    for item, shards in ((fewer, 4), (cold, 0)):
        call("orders_upsert_product", {"product_id": item, "name": "Drop", "price": 900, "currency": "usd",
                                       "stock_shards": shards, "idempotency_key": uuid.uuid4().hex}, user=staff)
    assert sorted(shard_levels(db, fewer)) == ["0", "1", "2", "3"] and shard_levels(db, cold) == {}
    assert (sum(shard_levels(db, fewer).values()), stock(db, cold)) == (18, 5)

    for placed in (first, second):
        publish(db, PaymentCanceled(payment_id="pay-" + placed["order_id"], order_id=placed["order_id"],
                                    uid=member.uid, reason="expired"))
        eventually(lambda oid=placed["order_id"]: order(db, oid)["status"] == "cancelled", what="cancelled")
    assert sorted(shard_levels(db, fewer)) == ["0", "1", "2", "3"]  # no shard 4..9 recreated
    assert sum(shard_levels(db, fewer).values()) == 20
    assert stock(db, cold) == 8 and shard_levels(db, cold) == {}  # back on the product, not in orphan shards


def test_a_double_tap_on_a_hot_product_and_a_plain_one_places_one_order(staff, member, db):
    """Six concurrent repeats of one key, for a hot product and a plain one in one order: one
    order, every tap answered with it (none `aborted`), each product's stock taken once."""
    hot, plain = hot_product(staff, stock=8, shards=4), product(db, stock=5)
    data = {"items": [{"product_id": hot, "quantity": 2}, {"product_id": plain, "quantity": 1}],
            "idempotency_key": uuid.uuid4().hex}
    with cf.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: harness.call_retrying("orders_place", data, member, aborted=False),
                                range(6)))
    assert len({a["order_id"] for a in answers}) == 1 and answers[0]["total"] == 2 * 900 + 1250
    assert sum(shard_levels(db, hot).values()) == 6 and stock(db, plain) == 4
    assert len(list(db.collection("orders").stream())) == 1


def test_an_account_being_deleted_cannot_order_a_hot_product(staff, member, db):
    """The profile is read in the order's transaction in one batch with the hot product: an
    account marked `deleting` is refused before any stock is taken, and nothing is written
    (no shard, product, order, hold or event)."""
    hot, plain = hot_product(staff, stock=4, shards=2), product(db, stock=3)
    before = shard_levels(db, hot)
    db.document(f"users/{member.uid}").update({"status": "deleting"})
    with pytest.raises(CallableError) as err:
        place(member, [(hot, 1), (plain, 1)])
    assert (err.value.code, err.value.details["reason"]) == ("permission-denied", "account_deleted")
    assert shard_levels(db, hot) == before and stock(db, plain) == 3
    assert list(db.collection("orders").stream()) == [] and harness.doc(db, f"order_holds/{member.uid}") is None
    assert list(db.collection("topics/order.placed/events").stream()) == []


def test_a_stale_shard_hint_never_takes_from_a_shard_the_product_no_longer_has(staff, member, db):
    """An instance remembers how many shards a hot product had and reads a random one in the
    batch that reads the product. Staff resplit it since (8 shards, then 3, then back onto the
    product): orders take only from what the product has now, and every unit stays counted."""
    item = hot_product(staff, stock=16, shards=8)
    orders = [place(member, [(item, 1)])]  # the worker that served it (likely the next ones' too) remembers 8
    for shards, left in ((3, 14), (0, 13)):
        call("orders_upsert_product", {"product_id": item, "name": "Drop", "price": 900, "currency": "usd",
                                       "stock_delta": 0, "stock_shards": shards, "idempotency_key": uuid.uuid4().hex},
             user=staff)
        orders.append(place(member, [(item, 1)]))
        if shards:
            assert sorted(shard_levels(db, item)) == ["0", "1", "2"] and sum(shard_levels(db, item).values()) == left
        else:
            assert shard_levels(db, item) == {} and stock(db, item) == left
    assert [order(db, o["order_id"])["items"][0].get("stock_shards") for o in orders] == [8, 3, None]

    # In this process, step by step: a sold-out answer never sums the shards of another
    # layout. An order read the product with 2 shards; staff split it in 4 and (not shown)
    # back in 2 before the order's transaction: the shards are read with the product, so the
    # 2 of 4 read are not taken for the whole stock ("only 2 left" of 4), and it is placed again.
    four = hot_product(staff, stock=4, shards=4)
    with pytest.raises(service.HotProductChanged):
        service._reserve_hot(db, four, 2, 3)
    assert service._reserve_hot(db, four, 4, 5).plan is None  # as read: all 4 shards, 4 units, short of 5
    # ... a hinted shard the product no longer has is not used ...
    back = hot_product(staff, stock=6, shards=3)
    gone = service.shard_ref(db, back, 5).get()
    mine = service._reserve_hot(db, back, 3, 1, first=gone)
    assert mine.shards == 3 and set(mine.levels) <= {0, 1, 2} and len(mine.plan) == 1
    # ... one it has is read no second time, and taken from first
    kept = service.shard_ref(db, back, 2).get()
    assert service._reserve_hot(db, back, 3, 2, first=kept) == service.ShardReservation(
        {2: 2}, {2: kept.update_time}, {2: 2}, 3)


def test_a_product_marked_hot_by_hand_without_shards_keeps_its_stock(member, db):
    """An operator sets stock_shards in the console instead of through orders_upsert_product:
    the refresh does not replace the real stock with the (empty) shards' sum."""
    item = product(db, stock=7)
    db.document(f"products/{item}").update({"stock_shards": 4})
    assert service.refresh_hot_stock(db) == {} and stock(db, item) == 7


def test_the_app_reads_the_summary_never_the_shards(staff, member, db):
    item = hot_product(staff, stock=10, shards=4)
    place(member, [(item, 4)])
    app = AppClient(member)
    assert app.get(f"products/{item}")["stock"] == 10  # the summary, until the next refresh
    with pytest.raises(Denied):
        app.get(f"products/{item}/stock_shards/0")
    assert service.refresh_hot_stock(db) == {item: 6}
    assert app.get(f"products/{item}")["stock"] == 6
    assert service.refresh_hot_stock(db) == {}  # unchanged: nothing written
