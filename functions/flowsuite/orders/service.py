"""Orders service code: products, placing and cancelling orders, payment-driven transitions.

Amounts are integers in the currency's smallest unit, priced here from the
products, never taken from the caller. Every state change commits with its
event in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time
import uuid
from typing import Any, NamedTuple

from google.api_core import exceptions as api_exceptions
from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.contracts.disputes import dispute_step_applies
from flowsuite.core import clock, events, idempotency, log, money, settings
from flowsuite.core.accounts import DELETED_USER, account_gone_in, profile_ref
from flowsuite.core.errors import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RetryLaterError,
    caused_by,
    is_contention,
)
from flowsuite.orders import config, states
from flowsuite.orders.documents import OrderDoc, OrderHoldDoc, ProductDoc, StockShardDoc
from flowsuite.orders.events import (
    Line,
    OrderCancelled,
    OrderCancelRequested,
    OrderFulfilled,
    OrderNeedsReview,
    OrderPaid,
    OrderPaymentRejected,
    OrderPlaced,
    OrderRefunded,
)

PRODUCTS = "products"
ORDERS = "orders"
HOLDS = "order_holds"  # order_holds/{uid}: what the user's unpaid orders hold (no hoarding)
SHARDS = "stock_shards"  # products/{id}/stock_shards/{k}: a hot product's stock, split (flash sales)


# ---- products ------------------------------------------------------------------

def stock_change(current: int | None, *, stock: int | None, expected: int | None, delta: int | None) -> int | None:
    """The stock an upsert writes, or None to leave it alone. Staff edits never overwrite stock
    that orders reserved meanwhile: an absolute value needs the stock the form loaded, a delta
    adds to whatever is there. Pure."""
    if stock is not None and delta is not None:
        raise InvalidArgumentError.for_field("stock_delta", "send stock or stock_delta, not both", "conflict")
    if current is None:  # a new product
        if stock is None:
            raise InvalidArgumentError.for_field("stock", "a new product needs its stock", "missing")
        return stock
    if delta is not None:
        if current + delta < 0:
            raise FailedPreconditionError(f"Only {current} in stock: cannot remove {-delta}.",
                                          details={"stock": current, "stock_delta": delta})
        return current + delta
    if stock is None:
        return None
    if expected is None:
        raise InvalidArgumentError.for_field(
            "expected_stock", "send the stock the form loaded to change stock (or use stock_delta)", "missing")
    if expected != current:
        raise FailedPreconditionError(
            f"The stock changed since the form loaded it ({expected} then, {current} now): reload and try again.",
            details={"stock": current, "expected_stock": expected})
    return stock


def upsert_product(db, req, *, uid: str | None, function: str = "orders_upsert_product") -> dict[str, Any]:
    """Creates or updates a product, idempotent on ``req.idempotency_key`` in the kernel's
    one-transaction mode (``idempotency.run_in_transaction``): the product, its shards and the
    stored answer commit together, so a retry after a crash either finds nothing written and
    runs again, or replays the answer: a ``stock_delta`` is never added twice, and a new
    product (its id drawn here) is never created twice."""
    product_id = req.product_id or uuid.uuid4().hex[:20]
    ref = db.collection(PRODUCTS).document(product_id)
    fields = {
        "name": req.name,
        "description": req.description,
        "image_url": req.image_url,
        "price": req.price,
        "currency": req.currency,
        "active": req.active,
        "updated_time": gcf.SERVER_TIMESTAMP,
    }

    def write(txn) -> dict[str, Any]:
        snap = ref.get(transaction=txn)
        data = snap.to_dict() or {} if snap.exists else {}
        before = shard_count(data.get("stock_shards")) if snap.exists else 0
        if before:  # a hot product's stock is the sum of its shards (read here, so it is exact)
            current = sum(int((s.to_dict() or {}).get("stock") or 0)
                          for s in txn.get_all([shard_ref(db, product_id, k) for k in range(before)]))
        else:
            current = int(data.get("stock") or 0) if snap.exists else None
        stock = stock_change(current, stock=req.stock, expected=req.expected_stock, delta=req.stock_delta)
        total = current if stock is None else stock
        fields["stock_shards"] = before if req.stock_shards is None else shard_count(req.stock_shards)
        resplit = stock is not None or fields["stock_shards"] != before
        txn.set(ref, ProductDoc.fields({**fields, **({"stock": total} if resplit else {}),
                                        **({} if snap.exists else {"created_time": gcf.SERVER_TIMESTAMP})}), merge=True)
        if resplit:
            # A hot product's stock lives in its shards; shards it no longer has go, so that
            # nothing counts them (un-marking it moves the stock back onto the product).
            levels = split_stock(total, fields["stock_shards"])
            for k, level in enumerate(levels):
                txn.set(shard_ref(db, product_id, k), StockShardDoc.new(stock=level, updated_time=gcf.SERVER_TIMESTAMP))
            for k in range(len(levels), before):
                txn.delete(shard_ref(db, product_id, k))
        return {"product_id": product_id, "stock": total,
                **{k: fields[k] for k in ("name", "price", "currency", "active", "stock_shards")}}

    return idempotency.run_in_transaction(db, uid=uid, function=function, key=req.idempotency_key,
                                          payload=req.model_dump(mode="json", exclude={"idempotency_key"}),
                                          compute=write)


def archive_product(db, product_id: str) -> dict[str, Any]:
    ref = db.collection(PRODUCTS).document(product_id)
    snap = ref.get()
    if not snap.exists:
        raise NotFoundError(f"No product {product_id}.", details={"product_id": product_id})
    ref.update(ProductDoc.fields(active=False, updated_time=gcf.SERVER_TIMESTAMP))
    data = snap.to_dict()
    return {"product_id": product_id, "name": data["name"], "price": data["price"], "currency": data["currency"],
            "stock": data["stock"], "active": False, "stock_shards": shard_count(data.get("stock_shards"))}


# ---- hot products: stock split across shards (Firebase's distributed-counter pattern) ----
#
# A product with ``stock_shards: N`` (N >= 2, set by staff through orders_upsert_product)
# keeps its stock in ``products/{id}/stock_shards/{0..N-1}``. An order reserves from one
# random shard, reading the others only when that one is short, so concurrent buyers of one
# product write different documents; the product document itself is only read while placing.
#
# Shards are reserved optimistically: read outside the order's transaction (no lock held
# while the order is priced and written) and written in it with a ``last_update_time``
# precondition. An instance remembers how many shards the hot products its orders read
# have, so its next order of one reads a random shard in the same batch as the order, the
# hold and the product: a hot product's order then costs the round trips of any other
# order. Two buyers who drew the same shard never wait on each other's locks (which
# under contention ends in lock timeouts, with Firestore's pessimistic server transactions
# and on the emulator alike): the later commit fails its precondition at once, nothing of it
# is written, and the order is placed again from fresh reads, most likely on another shard.
# Sold out is exact: an order is refused only after one batch read of every shard (and the
# product, so of one layout) found them short together. The product's ``stock`` (what the
# app shows) is a summary, recomputed from the shards by ``orders_refresh_hot_stock`` every
# minute.

def shard_ref(db, product_id: str, k: int):
    return db.collection(PRODUCTS).document(product_id).collection(SHARDS).document(str(k))


def shard_count(value: Any) -> int:
    """The shards a product's stock is split across: 0 (one document) or 2..MAX_STOCK_SHARDS. Pure."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 2:
        return 0
    return min(value, config.MAX_STOCK_SHARDS)


def split_stock(total: int, shards: int) -> list[int]:
    """``total`` units over ``shards`` shards, as evenly as possible (the first ones get the
    remainder); [] for a product kept in one document. Pure."""
    shards = shard_count(shards)
    if not shards:
        return []
    base, extra = divmod(max(0, int(total)), shards)
    return [base + (1 if k < extra else 0) for k in range(shards)]


def shard_order(shards: int, rng: random.Random | None = None) -> list[int]:
    """The order an order tries a hot product's shards in: a random one first, then the
    others in a random order. Pure given ``rng``."""
    rng = rng or random
    order = list(range(shards))
    rng.shuffle(order)
    return order


def take_from_shards(order: list[int], levels: dict[int, int], quantity: int) -> dict[int, int] | None:
    """What to take from which shard, trying them in ``order``: {shard: units}, or None when
    the shards in ``levels`` hold fewer than ``quantity`` together. Never takes more than a
    shard holds (a negative level counts as empty). Pure."""
    plan: dict[int, int] = {}
    wanted = quantity
    for k in order:
        if wanted <= 0:
            break
        level = max(0, int(levels.get(k) or 0))
        if level:
            plan[k] = min(level, wanted)
            wanted -= plan[k]
    return plan if wanted <= 0 else None


def release_shard(shards: int, rng: random.Random | None = None) -> int:
    """The shard released stock goes back to: any one (stock is fungible across shards). Pure given ``rng``."""
    return (rng or random).randrange(shards)


def _level(snap) -> int:
    return max(0, int((snap.to_dict() or {}).get("stock") or 0)) if snap.exists else 0


class ShardReservation(NamedTuple):
    levels: dict[int, int]  # the shards read: their levels
    read_at: dict[int, Any]  # ... and their update times (the commit's preconditions)
    plan: dict[int, int] | None  # what to take from which shard; None: all the shards are short
    shards: int  # the shards the product sells from, as read with them (see _reserve_hot)


class HotProductChanged(Exception):
    """A hot product's shard count (0: no longer hot, or no longer sold) changed between the
    reads of an order's attempt: the order is placed again from fresh reads."""


_SHARDS_SEEN: dict[str, int] = {}  # product -> shards, as this instance's orders last read it (a hint only)
_SHARDS_SEEN_MAX = 1000


def remember_shards(product_id: str, shards: int) -> None:
    """Notes how many shards a product had when read (0: not hot), for ``shard_hint``."""
    if shards:
        if len(_SHARDS_SEEN) >= _SHARDS_SEEN_MAX and product_id not in _SHARDS_SEEN:
            _SHARDS_SEEN.clear()
        _SHARDS_SEEN[product_id] = shards
    else:
        _SHARDS_SEEN.pop(product_id, None)


def shard_hint(product_id: str, rng: random.Random | None = None) -> int | None:
    """A random shard of a product this instance last saw hot, to read in one batch with the
    product (kept only if the product still has that many shards); None: none seen."""
    shards = _SHARDS_SEEN.get(product_id)
    return (rng or random).randrange(shards) if shards else None


def _reserve_hot(db, product_id: str, shards: int, quantity: int, *, first=None) -> ShardReservation:
    """Reads a hot product's shards outside the transaction, a random one first (``first``,
    when already read: a hint, dropped if the product no longer has that shard) and all of
    them only if it is short. ``plan`` is None only when every shard was read and they hold
    fewer than ``quantity`` together: "sold out" is exact. Those are read in one batch with
    the product (one snapshot), so a refusal never sums shards of another layout: staff
    resplitting and splitting back between two reads raises HotProductChanged instead. A
    plan needs no such check: it takes only from shards that held stock, each written with
    its ``last_update_time`` precondition, and a resplit rewrites or deletes every shard."""
    order = shard_order(shards)
    if first is not None and int(first.id) < shards:
        order.remove(int(first.id))
        order.insert(0, int(first.id))
    else:
        first = shard_ref(db, product_id, order[0]).get()
    reservation = ShardReservation({order[0]: _level(first)}, {order[0]: first.update_time}, None, shards)
    plan = take_from_shards(order[:1], reservation.levels, quantity)
    if plan is not None:
        return reservation._replace(plan=plan)
    every = ShardReservation({}, {}, None, shards)
    product = db.collection(PRODUCTS).document(product_id)
    for snap in db.get_all([product, *(shard_ref(db, product_id, k) for k in order)]):
        if snap.reference.path == product.path:
            if selling_shards(snap) != shards:
                raise HotProductChanged(product_id)
            continue
        every.levels[int(snap.id)] = _level(snap)
        every.read_at[int(snap.id)] = snap.update_time
    return every._replace(plan=take_from_shards(order, every.levels, quantity))


def selling_shards(snap) -> int:
    """The shards a product read from Firestore sells from: 0 unless it exists, is sold
    (active) and is hot."""
    data = snap.to_dict() if snap.exists else None
    return shard_count(data.get("stock_shards")) if data and data.get("active") else 0


def _reserve_hot_lines(db, lines: list, products: dict[str, Any], first: dict[str, Any]) -> dict[str, ShardReservation]:
    """Reserves each line of a hot product from its shards, outside the transaction:
    {product: reservation}. ``first``: shards already read, by product (``shard_hint``)."""
    reservations = {}
    for line in lines:
        shards = selling_shards(products[line.product_id])
        remember_shards(line.product_id, shards)
        if shards:
            reservations[line.product_id] = _reserve_hot(db, line.product_id, shards, line.quantity,
                                                         first=first.get(line.product_id))
    return reservations


def _read_for_order(db, order_ref, hold_ref, refs: list) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """(the order, the user's hold, the products, a random shard of each product this
    instance saw hot, by product), read outside the transaction in one call:
    what the order writes from them (a product's stock, the hold) is written with a
    ``last_update_time`` precondition (or created only if still missing), so concurrent
    buyers, and a double tap's repeats, hold no lock on them (like the client SDKs'
    optimistic transactions). Reading them in the transaction made two repeats each hold a
    read lock on the order and the hold that the other needed to write: a deadlock that the
    emulator ends by lock timeouts and Firestore by aborts, again at every retry."""
    hinted = {ref.id: shard_ref(db, ref.id, k) for ref in refs if (k := shard_hint(ref.id)) is not None}
    read = {snap.reference.path: snap for snap in db.get_all([order_ref, hold_ref, *refs, *hinted.values()])}
    return (read[order_ref.path], read[hold_ref.path], {ref.id: read[ref.path] for ref in refs},
            {pid: read[ref.path] for pid, ref in hinted.items()})


def _read_in_transaction(txn, db, uid: str, products: dict[str, Any],
                         reservations: dict[str, ShardReservation]) -> tuple[Any, dict[str, Any]]:
    """(the user's profile snapshot, the products), the profile and each hot product read in
    the transaction in one batch. A hot product is read again there: its document is not
    written (its shards are), and the read lock makes a staff edit (price, archive) wait for
    the orders that priced from it; buyers only share that lock. Raises HotProductChanged
    when one no longer has the shards its reservation was read under."""
    profile = profile_ref(db, uid)
    hot = [products[pid].reference for pid in reservations]
    read = {snap.reference.path: snap for snap in txn.get_all([profile, *hot])}
    fresh = {pid: read[products[pid].reference.path] for pid in reservations}
    for pid, reservation in reservations.items():
        if selling_shards(fresh[pid]) != reservation.shards:
            raise HotProductChanged(pid)
    return read[profile.path], {**products, **fresh}


def _take_from_shards(txn, db, product_id: str, reservation: ShardReservation) -> None:
    """Writes the shards a reservation takes from, each only if nothing wrote it since it was
    read (otherwise the commit fails with FAILED_PRECONDITION and writes nothing)."""
    for k, take in (reservation.plan or {}).items():
        txn.update(shard_ref(db, product_id, k),
                   StockShardDoc.fields(stock=reservation.levels[k] - take, updated_time=gcf.SERVER_TIMESTAMP),
                   option=db.write_option(last_update_time=reservation.read_at[k]))


def _stock_changed_meanwhile(exc: BaseException) -> bool:
    """Whether a failed commit failed because what it read outside the transaction changed
    since: stock (a product or a shard) or the user's hold (FAILED_PRECONDITION), or the
    order or the hold was created meanwhile (ALREADY_EXISTS: a repeat of the same key, or the
    user's other order, committed first). The SDK's rollback afterwards may raise in its
    stead, with it as context."""
    return caused_by(exc, api_exceptions.FailedPrecondition, api_exceptions.AlreadyExists, HotProductChanged)


def refresh_hot_stock(db, *, limit: int = 500) -> dict[str, int]:
    """Recomputes each hot product's ``stock`` summary from its shards (the app reads
    ``stock``; the shards are server-only). Writes only the summaries that changed."""
    changed: dict[str, int] = {}
    hot = db.collection(PRODUCTS).where(filter=FieldFilter("stock_shards", ">=", 2)).limit(limit).stream()
    for snap in hot:
        shards = shard_count(snap.get("stock_shards"))
        if not shards:
            continue
        found = [s for s in db.get_all([shard_ref(db, snap.id, k) for k in range(shards)]) if s.exists]
        if not found:  # marked hot by hand (the console) without shards: there is nothing to summarise
            log.warning("a hot product has no stock shards: summary left alone", product_id=snap.id)
            continue
        total = sum(_level(s) for s in found)
        if total == snap.get("stock"):
            continue
        try:  # only if the product is as read: a resplit or a product made not hot since keeps its stock
            snap.reference.update(ProductDoc.fields(stock=total, stock_refreshed_time=gcf.SERVER_TIMESTAMP),
                                  option=db.write_option(last_update_time=snap.update_time))
        except api_exceptions.FailedPrecondition:
            log.info("a hot product changed while its summary was computed: left to the next run", product_id=snap.id)
            continue
        changed[snap.id] = total
    return changed


# ---- placing -------------------------------------------------------------------

def order_id_for(uid: str, idempotency_key: str) -> str:
    """Deterministic: a repeat of the same key can never create a second order."""
    return hashlib.sha256(f"{uid}\n{idempotency_key}".encode()).hexdigest()[:20]


def price_lines(lines: list, products: dict[str, dict | None]) -> tuple[list[dict], int, str]:
    """Prices the lines from the products and checks them. Pure, for unit tests.

    ``products`` maps product id to its stored fields (None when missing).
    Returns (priced lines, total, currency).
    """
    priced, currency, total = [], None, 0
    for i, line in enumerate(lines):
        field = f"items.{i}.product_id"
        product = products.get(line.product_id)
        if product is None:
            raise InvalidArgumentError.for_field(field, f"unknown product {line.product_id}", "not_found")
        if not product.get("active"):
            raise FailedPreconditionError(
                f"{field}: product {line.product_id} is no longer sold",
                details={"fields": [{"field": field, "type": "archived", "message": "product is archived"}],
                         "product_id": line.product_id},
            )
        if currency is None:
            currency = product["currency"]
        elif product["currency"] != currency:
            raise InvalidArgumentError.for_field(
                field, f"is priced in {product['currency']}, the order in {currency}: one currency per order",
                "mixed_currency",
            )
        if product.get("stock", 0) < line.quantity:
            raise FailedPreconditionError(
                f"Not enough stock of {product.get('name', line.product_id)}: {product.get('stock', 0)} left.",
                details={"fields": [{"field": f"items.{i}.quantity", "type": "insufficient_stock",
                                     "message": f"only {product.get('stock', 0)} left"}],
                         "product_id": line.product_id, "available": product.get("stock", 0)},
            )
        unit = int(product["price"])
        priced.append({"product_id": line.product_id, "name": product.get("name", ""), "unit_price": unit,
                       "quantity": line.quantity})
        total += unit * line.quantity
    refused = money.charge_limit_error(total, currency or "usd") if priced else None
    if refused:
        raise InvalidArgumentError.for_field("items", f"{refused}: Stripe cannot charge it", "charge_limit")
    return priced, total, currency or ""


def held(hold: dict[str, Any] | None) -> tuple[int, int]:
    """(unpaid orders, units) from a user's hold document; never negative. Pure."""
    hold = hold or {}

    def count(key: str) -> int:
        value = hold.get(key)
        return max(0, int(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    return count("orders"), count("units")


def hold_refusal(hold: dict[str, Any] | None, units: int, *, max_orders: int,
                 max_units: int) -> ResourceExhaustedError | None:
    """Why one more unpaid order of ``units`` would hoard stock, or None. Pure.

    ``hold`` is the user's ``order_holds/{uid}`` document: their orders in pending_payment
    or cancelling, and the units those hold."""
    orders, held_units = held(hold)
    if orders >= max_orders:
        return ResourceExhaustedError(
            f"You already have {orders} unpaid orders, the most allowed at once: pay or cancel one first.",
            details={"reason": "too_many_unpaid_orders", "limit": max_orders, "held": orders},
        )
    if held_units + units > max_units:
        return ResourceExhaustedError(
            f"Unpaid orders may hold at most {max_units} items at once: yours hold {held_units} "
            f"and this order asks for {units}.",
            details={"reason": "too_many_unpaid_units", "limit": max_units, "held": held_units, "requested": units},
        )
    return None


def _release_hold(txn, db, order: dict[str, Any]) -> None:
    """The order left the unpaid statuses: its user's hold shrinks (a blind increment,
    no read). Orders placed before holds were counted, and anonymised ones, hold nothing."""
    if not order.get("quota_held") or order.get("anonymised"):
        return
    units = sum(int(line["quantity"]) for line in order["items"])
    txn.set(db.collection(HOLDS).document(order["uid"]),
            OrderHoldDoc.fields(orders=gcf.Increment(-1), units=gcf.Increment(-units),
                                updated_time=gcf.SERVER_TIMESTAMP),
            merge=True)


def place_order(db, *, uid: str, lines: list, idempotency_key: str, correlation_id: str,
                payload_hash: str) -> dict[str, Any]:
    """Reserves stock, writes the order and order.placed in one transaction.

    Optimistic, like the client SDKs' transactions: the order, the user's hold and the
    products (and a hot product's shards) are read outside the transaction; the commit
    creates the order (and a first hold) only if still missing and writes stock and the
    hold with ``last_update_time`` preconditions, so buyers of one product, and the repeats
    of a double tap, never wait on each other's locks. A commit that finds any of them
    changed writes nothing, and the order is placed again from fresh reads.

    The user's profile (identity's ``users/{uid}``, read only) is read in the transaction: an
    account being deleted, or deleted, is refused (``permission-denied``, ``account_deleted``)
    and nothing is written, as payments refuses it (``flowsuite.core.accounts``).

    Idempotent on its own: the order is its own idempotency record
    (``idempotency.replay_in_transaction`` reads it) and its id derives from (uid, key), so a
    repeat finds the order and answers it (also when it loses the race to create it: it
    reads it on its next attempt); a repeat with another payload is refused. A user's
    unpaid orders may hold only so much at once (``order_holds/{uid}``, in the same commit).
    """
    order_id = order_id_for(uid, idempotency_key)
    order_ref = db.collection(ORDERS).document(order_id)
    hold_ref = db.collection(HOLDS).document(uid)
    refs = [db.collection(PRODUCTS).document(line.product_id) for line in lines]
    timeout = settings.int_value(config.PAYMENT_TIMEOUT_MINUTES)
    max_orders = settings.int_value(config.MAX_UNPAID_ORDERS)
    max_units = settings.int_value(config.MAX_UNPAID_UNITS)
    units = sum(line.quantity for line in lines)

    @gcf.transactional
    def place(txn, hold, products: dict[str, Any], hot: dict[str, ShardReservation]) -> dict[str, Any]:
        # The account must live: its profile is read here (identity marks it `deleting` in the
        # transaction that publishes identity.user_deleted), so an order naming the user is
        # committed before that event, and orders' eraser finds it, or is not placed at all.
        profile, read = _read_in_transaction(txn, db, uid, products, hot)
        if account_gone_in(txn, db, uid, profile=profile):
            raise PermissionDeniedError("This account was deleted.", details={"reason": "account_deleted"})
        snaps = {pid: (snap.to_dict() if snap.exists else None) for pid, snap in read.items()}
        for line in lines:  # a hot product's stock is what its shards hold: enough, the
            # quantity; short, exactly what all the shards hold (0 = sold out)
            if (reservation := hot.get(line.product_id)) is not None:
                snaps[line.product_id] = {**snaps[line.product_id], "stock": line.quantity
                                          if reservation.plan is not None else sum(reservation.levels.values())}
        priced, total, currency = price_lines(lines, snaps)
        for line in priced:
            if line["product_id"] in hot:
                _take_from_shards(txn, db, line["product_id"], hot[line["product_id"]])
                continue
            left = snaps[line["product_id"]]["stock"] - line["quantity"]
            txn.update(db.collection(PRODUCTS).document(line["product_id"]),
                       ProductDoc.fields(stock=left, updated_time=gcf.SERVER_TIMESTAMP),
                       option=db.write_option(last_update_time=read[line["product_id"]].update_time))
        now = clock.utcnow()
        order = OrderDoc.new({
            "order_id": order_id,
            "uid": uid,
            "user_ref": profile_ref(db, uid),
            "items": [{**line, "product_ref": db.collection(PRODUCTS).document(line["product_id"]),
                       **({"stock_shards": hot[line["product_id"]].shards} if line["product_id"] in hot else {})}
                      for line in priced],
            "total": total,
            "currency": currency,
            "status": states.PENDING_PAYMENT,
            "payment_id": None,
            "correlation_id": correlation_id,
            "request_hash": payload_hash,
            "created_time": now,
            "updated_time": now,
            "expires_at": now + dt.timedelta(minutes=timeout),
            "history": [{"status": states.PENDING_PAYMENT, "at": now, "by": uid}],
            "quota_held": True,  # counted in order_holds/{uid} until it is paid or cancelled
        })
        txn.create(order_ref, order)  # ALREADY_EXISTS if a repeat created it since it was read
        orders, held_units = held(hold.to_dict() if hold.exists else None)
        holding = OrderHoldDoc.new(orders=orders + 1, units=held_units + units, updated_time=gcf.SERVER_TIMESTAMP)
        if hold.exists:
            txn.update(hold_ref, holding, option=db.write_option(last_update_time=hold.update_time))
        else:
            txn.create(hold_ref, holding)
        events.publish(
            txn,
            OrderPlaced(order_id=order_id, uid=uid, total=total, currency=currency,
                        items=[Line(**line) for line in priced]),
            subject=f"{ORDERS}/{order_id}", correlation_id=correlation_id, db=db,
        )
        return order

    # Stock another buyer took after this order read it: placed again from fresh reads. So is
    # a transaction Firestore aborted for contention (a read or the commit answered ABORTED:
    # repeats of one key, or one user's orders, meet on the same order and hold documents),
    # after a longer, growing pause. What the attempts do not get through ends as `aborted`
    # (retryable, nothing written) rather than holding the caller for a minute.
    for attempt in range(config.STOCK_ATTEMPTS):
        existing, hold, products, first_shards = _read_for_order(db, order_ref, hold_ref, refs)
        repeat = idempotency.replay_in_transaction(existing.to_dict() if existing.exists else None, payload_hash)
        if repeat is not None:  # a repeat of the same key
            return answer(repeat)
        refused = hold_refusal(hold.to_dict() if hold.exists else None, units,
                               max_orders=max_orders, max_units=max_units)
        if refused is not None:
            raise refused
        try:
            return answer(place(db.transaction(), hold, products, _reserve_hot_lines(db, lines, products, first_shards)))
        except Exception as exc:
            if _stock_changed_meanwhile(exc):
                reason, pause = "changed since read", 0.02 * (attempt + 1)
            elif is_contention(exc):
                reason, pause = "contention", min(1.0, 0.05 * 2 ** attempt)
            else:
                raise
            log.info("placing again", order_id=order_id, attempt=attempt + 1, reason=reason)
            time.sleep(random.uniform(0, pause))  # jitter: buyers who met do not meet again
    raise AbortedError("Too many buyers at once for this product: try again.",
                       details={"reason": "contention", "retryable": True})


def answer(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "status": order["status"],
        "total": order["total"],
        "currency": order["currency"],
        "items": [{k: line[k] for k in ("product_id", "name", "unit_price", "quantity")} for line in order["items"]],
    }


# ---- transitions ---------------------------------------------------------------

def _existing_products(txn, db, order: dict[str, Any]) -> dict[str, int]:
    """The order's products that still exist, read in the caller's transaction (before any
    write), each with the shards its stock is split across now (0: kept on the product):
    stock is released only into those, as the product is laid out at release time, not as
    it was when the order was placed (staff may have resplit it since). A product deleted in
    the console is not an error; its line is logged and skipped."""
    refs = [db.collection(PRODUCTS).document(pid) for pid in dict.fromkeys(li["product_id"] for li in order["items"])]
    found = {snap.id: shard_count((snap.to_dict() or {}).get("stock_shards"))
             for snap in txn.get_all(refs) if snap.exists}
    for ref in refs:
        if ref.id not in found:
            log.warning("stock not released: the product no longer exists", product_id=ref.id)
    return found


def _release_stock(txn, db, order: dict[str, Any], existing: dict[str, int]) -> None:
    """Gives an order's stock back to the products that still exist: to the product document,
    or, for a product that is hot now, to one of its current shards (a blind increment: a
    transaction cannot read after it wrote)."""
    for line in order["items"]:
        if line["product_id"] not in existing:
            continue
        shards = existing[line["product_id"]]
        if shards:
            txn.set(shard_ref(db, line["product_id"], release_shard(shards)),
                    StockShardDoc.fields(stock=gcf.Increment(line["quantity"]), updated_time=gcf.SERVER_TIMESTAMP),
                    merge=True)
            continue
        txn.update(db.collection(PRODUCTS).document(line["product_id"]),
                   ProductDoc.fields(stock=gcf.Increment(line["quantity"]), updated_time=gcf.SERVER_TIMESTAMP))


def _transition(db, txn, ref, order: dict, target: str, by: str, extra: dict | None = None) -> None:
    """One update of the order. ``extra`` may rewrite the whole ``history`` (erasure): the
    transition's entry is then appended to that list, so the order is still written once."""
    states.check(order["status"], target, order_id=ref.id)
    now = clock.utcnow()
    leaves_unpaid = order["status"] in states.UNPAID and target not in states.UNPAID
    extra = dict(extra or {})
    entry = {"status": target, "at": now, "by": by}
    txn.update(ref, OrderDoc.fields({
        "status": target,
        "updated_time": now,
        f"{target}_time": now,
        "history": [*extra.pop("history"), entry] if "history" in extra else gcf.ArrayUnion([entry]),
        **({"quota_held": False} if leaves_unpaid and order.get("quota_held") else {}),
        **({"needs_review": False} if order.get("needs_review") else {}),  # staff acted on it
        **extra,
    }))
    if leaves_unpaid:
        _release_hold(txn, db, order)


def _read_order(txn, ref) -> dict[str, Any]:
    snap = ref.get(transaction=txn)
    if not snap.exists:
        raise NotFoundError(f"No order {ref.id}.", details={"order_id": ref.id})
    return snap.to_dict()


def cancel(db, txn, ref, order: dict, *, by: str, reason: str) -> None:
    """Cancels an order (in the caller's transaction): stock released, order.cancelled published.

    An unpaid order reaches here only once its PaymentIntent is closed (``payment.canceled``);
    a paid one is refunded by payments (``was_paid``)."""
    was_paid = order["status"] == states.PAID
    existing = _existing_products(txn, db, order) if order["status"] in states.HOLDS_STOCK else {}
    _transition(db, txn, ref, order, states.CANCELLED, by, {"cancel_reason": reason})
    if order["status"] in states.HOLDS_STOCK:
        _release_stock(txn, db, order, existing)
    events.publish(
        txn,
        OrderCancelled(order_id=ref.id, uid=order["uid"], reason=reason, was_paid=was_paid,
                       payment_id=order.get("payment_id"), total=order["total"], currency=order["currency"]),
        subject=f"{ORDERS}/{ref.id}", db=db,
    )


def request_cancel(db, txn, ref, order: dict, *, by: str, reason: str, extra: dict | None = None) -> None:
    """Starts cancelling an unpaid order: ``cancelling`` (stock still held) and
    order.cancel_requested, on which payments closes the PaymentIntent at Stripe. The order is
    cancelled on payment.canceled, or paid if Stripe says the payment got there first.
    ``extra``: other fields written with the transition (erasure's anonymisation)."""
    _transition(db, txn, ref, order, states.CANCELLING, by, {"cancel_reason": reason, **(extra or {})})
    events.publish(txn, OrderCancelRequested(order_id=ref.id, uid=order["uid"], reason=reason),
                   subject=f"{ORDERS}/{ref.id}", db=db)


def dispute_open(order: dict[str, Any]) -> bool:
    """Whether the order's payment is under a formal dispute (a chargeback) not closed yet:
    Stripe's needs_response or under_review (closed: won, lost). Stripe refuses to refund a
    charged-back charge (``charge_disputed``), so such an order cannot be cancelled, by its owner
    or staff. An inquiry (``warning_*``) withdraws no funds and the payment can still be refunded;
    Stripe advises refunding then (it closes the inquiry with no dispute fee), so it blocks
    nothing. Pure."""
    status = str(order.get("dispute_status") or "")
    return bool(order.get("dispute_id")) and not order.get("dispute_closed") and not status.startswith("warning_")


def cancel_by_caller(db, *, order_id: str, uid: str, role: str) -> str:
    ref = db.collection(ORDERS).document(order_id)

    @gcf.transactional
    def run(txn) -> str:
        order = _read_order(txn, ref)
        staff = role in ("staff", "admin")
        if not staff and order["uid"] != uid:
            raise PermissionDeniedError("This is not your order.", details={"order_id": order_id})
        if order["status"] == states.CANCELLING:
            return states.CANCELLING  # a double tap: the first request is under way
        if not states.cancellable(order["status"]):
            raise FailedPreconditionError(
                f"Order {order_id} is {order['status']} and can no longer be cancelled.",
                details={"order_id": order_id, "status": order["status"]},
            )
        if dispute_open(order):
            raise FailedPreconditionError(
                f"Order {order_id} has an open dispute ({order['dispute_id']}, {order.get('dispute_status')}): "
                "it cannot be cancelled until the dispute is closed (Stripe refunds no disputed charge).",
                details={"order_id": order_id, "status": order["status"], "reason": "dispute_open",
                         "dispute_id": order["dispute_id"], "dispute_status": order.get("dispute_status")},
            )
        reason = "cancelled_by_staff" if staff and order["uid"] != uid else "cancelled_by_customer"
        if order["status"] == states.PENDING_PAYMENT:
            request_cancel(db, txn, ref, order, by=uid, reason=reason)
            return states.CANCELLING
        cancel(db, txn, ref, order, by=uid, reason=reason)
        return states.CANCELLED

    return run(db.transaction())


def mark_fulfilled(db, *, order_id: str, by: str) -> str:
    ref = db.collection(ORDERS).document(order_id)

    @gcf.transactional
    def run(txn) -> str:
        order = _read_order(txn, ref)
        _transition(db, txn, ref, order, states.FULFILLED, by)
        events.publish(txn, OrderFulfilled(order_id=order_id, uid=order["uid"]), subject=f"{ORDERS}/{order_id}", db=db)
        return states.FULFILLED

    return run(db.transaction())


def rejection_reason(order: dict, data) -> str | None:
    """Why a succeeded payment cannot pay this order, or None when it pays it. Pure."""
    if order.get("anonymised"):
        return "account_deleted"
    if order["status"] not in states.PAYABLE:
        return f"order_{order['status']}"
    if data.amount != order["total"] or data.currency != order["currency"]:
        return "amount_mismatch"
    return None


def on_payment_succeeded(db, txn, data) -> None:
    """payment.succeeded: the order is paid, or, when it can no longer be paid, the payment is
    rejected (payments refunds it) and an order still being cancelled is cancelled."""
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if order.get("payment_id") == data.payment_id and order["status"] != states.CANCELLING:
        return  # already paid by it (and perhaps fulfilled, cancelled or refunded since)
    reason = rejection_reason(order, data)
    if reason is not None:
        if order["status"] == states.CANCELLING:
            cancel(db, txn, ref, order, by="payments", reason=order.get("cancel_reason") or reason)
        events.publish(txn, OrderPaymentRejected(order_id=data.order_id, uid=data.uid, payment_id=data.payment_id,
                                                 reason=reason),
                       subject=f"{ORDERS}/{data.order_id}", db=db)
        return
    _transition(db, txn, ref, order, states.PAID, "payments", {"payment_id": data.payment_id, "cancel_reason": None})
    events.publish(
        txn,
        OrderPaid(order_id=data.order_id, uid=order["uid"], total=order["total"], currency=order["currency"],
                  payment_id=data.payment_id),
        subject=f"{ORDERS}/{data.order_id}", db=db,
    )


def on_payment_canceled(db, txn, data) -> None:
    """payment.canceled: nobody can pay the order any more, so it is cancelled and its stock released."""
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if order["status"] not in states.PAYABLE:
        return  # already cancelled, or paid before the intent was closed
    reason = order.get("cancel_reason") if order["status"] == states.CANCELLING else None
    cancel(db, txn, ref, order, by="payments", reason=reason or data.reason or "payment_canceled")


def refund_awaits_success(order: dict[str, Any], data) -> bool:
    """Whether a refund of the order's payment reached orders before that payment's success
    did (delivery is unordered; payments publishes payment.succeeded before any
    payment.refunded of a payment): the order has no payment yet and is still payable, and
    the success, once it arrives, would pay it (not a payment it rejects: an anonymised order,
    another currency, a full refund of another amount). The refund must then wait for the
    success, or the success would make a refunded payment's order ``paid``. Pure."""
    if order.get("payment_id") is not None or order.get("status") not in states.PAYABLE:
        return False
    if order.get("anonymised") or data.currency != order.get("currency"):
        return False
    return not data.full or int(data.amount_refunded or data.amount) == int(order.get("total") or 0)


def on_payment_refunded(db, txn, data, published: dt.datetime | None = None) -> None:
    """payment.refunded: a full refund of a paid order refunds it (a paid, unfulfilled order's
    stock goes back); a partial one is recorded; a refunded payment that never paid the order
    (a late success) leaves it as it is. A refund that arrives before its payment's success
    waits for it (``RetryLaterError``: the bus retries it without counting a failure).
    ``published``: the event's time. An order flagged for a refund that failed is cleared by a
    full refund published after the failure; one published before it (deliveries are
    unordered) may be of the refund that failed: the flag and the lower amount stay."""
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if refund_awaits_success(order, data):
        raise RetryLaterError(f"payment {data.payment_id} was refunded before its success reached order "
                              f"{data.order_id}: the refund waits for it",
                              details={"order_id": data.order_id, "payment_id": data.payment_id})
    if order.get("payment_id") != data.payment_id:
        return  # the payment never paid this order: nothing to undo here
    refunded = max(int(order.get("amount_refunded") or 0), int(data.amount_refunded or data.amount))
    if not data.full:
        # A partial refund published before a refund failure the order has recorded may be the one
        # that failed (deliveries are unordered): the failure's lower amount stands.
        if refunded > int(order.get("amount_refunded") or 0) and refund_failure_resolved(order, published):
            txn.update(ref, OrderDoc.fields(amount_refunded=refunded, updated_time=clock.utcnow()))
        return
    flagged = order.get("needs_review") and order.get("review_reason") == REVIEW_REFUND_FAILED
    latest = order.get("full_refund_published_time")
    stamp = {"full_refund_published_time": published} if published and (latest is None or published > latest) else {}
    if order["status"] == states.REFUNDED:
        resolved = {"amount_refunded": refunded, "needs_review": False} \
            if flagged and refund_failure_resolved(order, published) else {}  # refunded again after a failure
        if stamp or resolved:
            txn.update(ref, OrderDoc.fields(stamp, resolved, updated_time=clock.utcnow()))
        return
    existing = _existing_products(txn, db, order) if order["status"] in states.HOLDS_STOCK else {}
    keep = {"needs_review": True, "amount_refunded": int(order.get("amount_refunded") or 0)} \
        if flagged and not refund_failure_resolved(order, published) else {}
    _transition(db, txn, ref, order, states.REFUNDED, "payments", {"amount_refunded": refunded, **stamp, **keep})
    if order["status"] in states.HOLDS_STOCK:
        _release_stock(txn, db, order, existing)
    events.publish(
        txn,
        OrderRefunded(order_id=data.order_id, uid=order["uid"], total=order["total"], currency=order["currency"]),
        subject=f"{ORDERS}/{data.order_id}", db=db,
    )


REVIEW_REFUND_FAILED = "refund_failed"


def refund_failure_resolved(order: dict[str, Any], published: dt.datetime | None) -> bool:
    """Whether a full refund published at ``published`` clears an order's refund-failure flag:
    it was published after the failure (both events are published in transactions on the one
    payment, so their times order them). Pure."""
    failed = order.get("refund_failed_time")
    return failed is None or (published is not None and published > failed)


def refund_failure_superseded(order: dict[str, Any], published: dt.datetime) -> bool:
    """Whether a refund failure published at ``published`` is behind a full refund of the order
    published after it (its payment.refunded was delivered first): the order is refunded, and
    stays so. Pure."""
    latest = order.get("full_refund_published_time")
    return latest is not None and latest > published


def refund_failure_fields(order: dict[str, Any], data, published: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """What an order records of a refund that failed at Stripe (payment.refund_failed published
    at ``published``): flagged for staff, with Stripe's reason and the failure's time; the
    refunded amount goes down to the payment's (only for the payment that paid it, never up).
    Pure."""
    fields: dict[str, Any] = {"needs_review": True, "review_reason": REVIEW_REFUND_FAILED,
                              "refund_failure_reason": data.reason or data.status, "refund_failed_time": published,
                              "updated_time": now}
    if order.get("payment_id") == data.payment_id:
        fields["amount_refunded"] = max(0, min(int(order.get("amount_refunded") or 0), int(data.amount_refunded)))
    return OrderDoc.fields(fields)


def on_payment_refund_failed(db, txn, data, published: dt.datetime) -> None:
    """payment.refund_failed: the customer has not got the money back. The order keeps its status
    (the refund's effects on stock stand) and is flagged for staff (``needs_review``,
    ``review_reason: refund_failed``), showing what is refunded of it now; admins are alerted by
    notifications. A later full refund clears the flag; a failure published before a full refund
    the order has already taken (deliveries are unordered) changes nothing."""
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if order.get("payment_id") == data.payment_id and refund_failure_superseded(order, published):
        log.info("a refund failure arrived after a later full refund of the order: nothing to flag",
                 order_id=ref.id, payment_id=data.payment_id, refund_id=data.refund_id)
        return
    txn.update(ref, refund_failure_fields(order, data, published, clock.utcnow()))
    log.warning("a refund of the order failed at Stripe: flagged to staff", order_id=ref.id,
                payment_id=data.payment_id, refund_status=data.status, failure_reason=data.reason)


def on_payment_disputed(db, txn, data) -> None:
    """payment.disputed: the order shows the dispute and its state (staff act on it in Stripe).
    Delivery is unordered: an update older (Stripe's ``created``) than the newest applied is
    ignored, and a closed dispute never reopens."""
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    known_time = int(order.get("dispute_event_time") or 0)
    if not dispute_step_applies(known_id=order.get("dispute_id"), known_status=order.get("dispute_status"),
                                known_time=known_time, dispute_id=data.dispute_id, status=data.status,
                                created=data.created):
        return  # an older update (of a dispute already closed, or stepped past it)
    newest = max(data.created, known_time) if order.get("dispute_id") == data.dispute_id else data.created
    txn.update(ref, OrderDoc.fields(dispute_id=data.dispute_id, dispute_status=data.status, dispute_closed=data.closed,
                                    dispute_event_time=newest, updated_time=clock.utcnow()))


def expire_unpaid(db, *, now: dt.datetime | None = None, limit: int = 200) -> list[str]:
    """Starts cancelling pending orders whose payment window closed (the intent is closed at
    Stripe, then the stock released). One bad order is logged and skipped, never a stop."""
    now = now or clock.utcnow()
    due = (
        db.collection(ORDERS)
        .where(filter=FieldFilter("status", "==", states.PENDING_PAYMENT))
        .where(filter=FieldFilter("expires_at", "<=", now))
        .limit(limit)
        .stream()
    )
    expired = []
    for snap in due:
        ref = snap.reference

        @gcf.transactional
        def run(txn, ref=ref) -> bool:
            order = _read_order(txn, ref)
            if order["status"] != states.PENDING_PAYMENT or order["expires_at"] > now:
                return False
            request_cancel(db, txn, ref, order, by="expiry", reason="payment_timeout")
            return True

        try:
            if run(db.transaction()):
                expired.append(ref.id)
        except Exception as exc:  # noqa: BLE001 - one bad order never stops the others
            log.error("expiry skipped an order", order_id=ref.id, error=f"{type(exc).__name__}: {exc}"[:300])
    return expired


REVIEW_ACCOUNT_DELETED = "account_deleted"


def open_business(order: dict[str, Any]) -> bool:
    """A paid order not fulfilled yet: what the shop still owes a customer who deletes their
    account. Pure."""
    return order.get("status") == states.PAID


def anonymised(order: dict[str, Any], uid: str) -> dict[str, Any]:
    """The field updates that take the person out of an order, keeping what accounting needs
    (items, amounts, currency, statuses and times, payment id). A paid order not fulfilled is
    flagged for staff (``needs_review``): deleting an account erases the person, not the
    purchase. Pure."""
    history = [{**h, "by": DELETED_USER if h.get("by") == uid else h.get("by")} for h in order.get("history", [])]
    review = {"needs_review": True, "review_reason": REVIEW_ACCOUNT_DELETED} if open_business(order) else {}
    return OrderDoc.fields({"uid": DELETED_USER, "user_ref": None, "anonymised": True, "history": history}, review)


def erase(db, uid: str) -> None:
    """Orders are kept for accounting with the person removed; pending ones are cancelled (their
    PaymentIntent closed first; a payment that still lands is refunded). A paid order not yet
    fulfilled stays paid and is flagged to staff (``needs_review``, ``order.needs_review``, which
    alerts every admin): staff fulfil it or cancel it, which refunds it. The user's hold counter
    goes (an anonymised order releases nothing into it).

    A pending order is anonymised and its cancellation requested in one transaction, the
    request naming the anonymised order's owner (``DELETED_USER``): payments, whose eraser
    may have run already, records the closed payment under that name, never the person's."""
    query = db.collection(ORDERS).where(filter=FieldFilter("uid", "==", uid)).limit(200)
    while True:
        snaps = list(query.stream())
        if not snaps:
            db.collection(HOLDS).document(uid).delete()
            return
        for snap in snaps:
            ref = snap.reference

            @gcf.transactional
            def anonymise(txn, ref=ref) -> None:
                order = _read_order(txn, ref)
                if order["uid"] != uid:
                    return
                fields = anonymised(order, uid)
                if order["status"] == states.PENDING_PAYMENT:  # one write: anonymised and cancelling
                    request_cancel(db, txn, ref, {**order, **fields}, by="erasure", reason="account_deleted",
                                   extra=fields)
                else:
                    txn.update(ref, fields)
                if fields.get("needs_review"):
                    events.publish(txn, OrderNeedsReview(order_id=ref.id, reason=REVIEW_ACCOUNT_DELETED,
                                                         status=order["status"], total=order["total"],
                                                         currency=order["currency"]),
                                   subject=f"{ORDERS}/{ref.id}", db=db)
                    log.warning("a paid order lost its customer: flagged to staff", order_id=ref.id)

            anonymise(db.transaction())
