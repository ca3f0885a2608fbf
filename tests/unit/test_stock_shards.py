"""Hot products (flash sales): the pure shard logic of flowsuite.orders.service."""

from __future__ import annotations

import random

import pytest
from flowsuite.orders import config, service
from flowsuite.orders.service import release_shard, shard_count, shard_order, split_stock, take_from_shards


@pytest.mark.parametrize("value, shards", [(None, 0), (0, 0), (1, 0), (-3, 0), (True, 0), ("8", 0), (2, 2), (16, 16),
                                           (10_000, config.MAX_STOCK_SHARDS)])
def test_a_product_is_hot_from_two_shards(value, shards):
    assert shard_count(value) == shards


@pytest.mark.parametrize("total, shards", [(0, 4), (1, 4), (20, 8), (100, 16), (7, 3), (1_000_000, 100)])
def test_the_split_is_even_and_loses_nothing(total, shards):
    levels = split_stock(total, shards)
    assert len(levels) == shards and sum(levels) == total
    assert max(levels) - min(levels) <= 1


def test_a_product_in_one_document_has_no_shards():
    assert split_stock(50, 0) == split_stock(50, 1) == []


def test_the_order_starts_anywhere_and_visits_every_shard_once():
    rng = random.Random(7)
    firsts = set()
    for _ in range(200):
        order = shard_order(8, rng)
        assert sorted(order) == list(range(8))
        firsts.add(order[0])
    assert firsts == set(range(8))  # buyers spread over the shards


def test_one_shard_that_holds_enough_is_all_an_order_takes():
    assert take_from_shards([3, 0, 1], {3: 5, 0: 9, 1: 9}, 2) == {3: 2}


def test_a_short_shard_is_topped_up_from_the_next_ones():
    assert take_from_shards([2, 0, 1], {2: 1, 0: 0, 1: 4}, 3) == {2: 1, 1: 2}


def test_sold_out_is_exact_never_more_than_the_shards_hold():
    levels = {0: 1, 1: 1, 2: 1}
    assert take_from_shards([0, 1, 2], levels, 3) == {0: 1, 1: 1, 2: 1}
    assert take_from_shards([0, 1, 2], levels, 4) is None
    assert take_from_shards([0, 1, 2], {0: 0, 1: 0, 2: 0}, 1) is None
    assert take_from_shards([0, 1], {0: -2, 1: 1}, 1) == {1: 1}  # a negative level counts as empty


def test_shards_not_read_are_not_counted():
    assert take_from_shards([0], {0: 1, 1: 9}, 2) is None


def test_no_sequence_of_orders_oversells():
    rng = random.Random(11)
    levels = dict(enumerate(split_stock(100, 16)))
    sold = 0
    for _ in range(400):
        quantity = rng.randint(1, 3)
        plan = take_from_shards(shard_order(16, rng), levels, quantity)
        if plan is None:
            assert sum(levels.values()) < quantity
            continue
        assert sum(plan.values()) == quantity
        for k, take in plan.items():
            assert take <= levels[k]
            levels[k] -= take
        sold += quantity
    assert sold + sum(levels.values()) == 100 and min(levels.values()) >= 0


def test_released_stock_goes_to_an_existing_shard():
    rng = random.Random(3)
    assert {release_shard(4, rng) for _ in range(100)} == {0, 1, 2, 3}


def test_a_stale_shard_is_recognised_through_the_sdks_rollback_error():
    from flowsuite.orders.service import _stock_changed_meanwhile
    from google.api_core import exceptions as api_exceptions

    stale = api_exceptions.FailedPrecondition("the stored version does not match the required base version")
    assert _stock_changed_meanwhile(stale)
    rollback = api_exceptions.InvalidArgument("transaction not found")
    rollback.__context__ = stale  # the SDK rolls back after a failed commit; if that raises, this is what arrives
    assert _stock_changed_meanwhile(rollback)
    assert not _stock_changed_meanwhile(api_exceptions.Aborted("contention"))
    assert not _stock_changed_meanwhile(ValueError("Failed to commit transaction in 5 attempts"))


def test_an_order_or_hold_created_meanwhile_is_a_stale_read_too():
    # a double tap's other repeat (or the user's other order) committed first: read again
    from flowsuite.orders.service import _stock_changed_meanwhile
    from google.api_core import exceptions as api_exceptions

    assert _stock_changed_meanwhile(api_exceptions.AlreadyExists("Document already exists: orders/x"))
    assert not _stock_changed_meanwhile(api_exceptions.NotFound("no document to update"))


def test_an_instance_hints_a_shard_only_of_a_product_it_last_saw_hot(monkeypatch):
    monkeypatch.setattr(service, "_SHARDS_SEEN", {})
    rng = random.Random(3)
    assert service.shard_hint("p", rng) is None  # never seen: the order reads the product first
    service.remember_shards("p", 8)
    assert {service.shard_hint("p", rng) for _ in range(200)} == set(range(8))
    service.remember_shards("p", 0)  # read since as not hot (or not sold): no hint
    assert service.shard_hint("p", rng) is None


def test_the_hints_an_instance_keeps_are_bounded(monkeypatch):
    monkeypatch.setattr(service, "_SHARDS_SEEN", {})
    monkeypatch.setattr(service, "_SHARDS_SEEN_MAX", 3)
    for k in range(3):
        service.remember_shards(f"p{k}", 4)
    service.remember_shards("p1", 6)  # one it has: updated in place
    assert service._SHARDS_SEEN == {"p0": 4, "p1": 6, "p2": 4}
    service.remember_shards("p3", 2)  # full: forgotten, then this one kept
    assert service._SHARDS_SEEN == {"p3": 2}
