"""Orders service code: products, placing and cancelling orders, payment-driven transitions.

Amounts are integers in the currency's smallest unit, priced here from the
products, never taken from the caller. Every state change commits with its
event in one transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from google.cloud import firestore as gcf
from google.cloud.firestore_v1.base_query import FieldFilter

from flowsuite.core import clock, events, settings
from flowsuite.core.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)
from flowsuite.orders import config, states
from flowsuite.orders.events import (
    Line,
    OrderCancelled,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
)

PRODUCTS = "products"
ORDERS = "orders"
DELETED_USER = "deleted-user"


def user_ref(db, uid: str):
    return db.collection("users").document(uid)


# ---- products ------------------------------------------------------------------

def upsert_product(db, req) -> dict[str, Any]:
    product_id = req.product_id or uuid.uuid4().hex[:20]
    ref = db.collection(PRODUCTS).document(product_id)
    fields = {
        "name": req.name,
        "description": req.description,
        "image_url": req.image_url,
        "price": req.price,
        "currency": req.currency,
        "stock": req.stock,
        "active": req.active,
        "updated_time": gcf.SERVER_TIMESTAMP,
    }

    @gcf.transactional
    def write(txn) -> None:
        snap = ref.get(transaction=txn)
        txn.set(ref, {**fields, **({} if snap.exists else {"created_time": gcf.SERVER_TIMESTAMP})}, merge=True)

    write(db.transaction())
    return {"product_id": product_id, **{k: fields[k] for k in ("name", "price", "currency", "stock", "active")}}


def archive_product(db, product_id: str) -> dict[str, Any]:
    ref = db.collection(PRODUCTS).document(product_id)
    snap = ref.get()
    if not snap.exists:
        raise NotFoundError(f"No product {product_id}.", details={"product_id": product_id})
    ref.update({"active": False, "updated_time": gcf.SERVER_TIMESTAMP})
    data = snap.to_dict()
    return {"product_id": product_id, "name": data["name"], "price": data["price"], "currency": data["currency"],
            "stock": data["stock"], "active": False}


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
    return priced, total, currency or ""


def place_order(db, *, uid: str, lines: list, idempotency_key: str, correlation_id: str,
                payload_hash: str) -> dict[str, Any]:
    """Reserves stock, writes the order and order.placed in one transaction.

    Idempotent on its own: the order id derives from (uid, key), so a repeat finds the
    order and answers it; a repeat with another payload is refused.
    """
    order_id = order_id_for(uid, idempotency_key)
    order_ref = db.collection(ORDERS).document(order_id)
    refs = [db.collection(PRODUCTS).document(line.product_id) for line in lines]
    timeout = settings.int_value(config.PAYMENT_TIMEOUT_MINUTES)

    @gcf.transactional
    def place(txn) -> dict[str, Any]:
        existing = order_ref.get(transaction=txn)
        if existing.exists:  # a repeat of the same key
            if existing.get("request_hash") != payload_hash:
                raise InvalidArgumentError.for_field(
                    "idempotency_key", "was already used with a different payload", "idempotency_key_reused")
            return existing.to_dict()
        snaps = {s.id: (s.to_dict() if s.exists else None) for s in txn.get_all(refs)}
        priced, total, currency = price_lines(lines, snaps)
        for line in priced:
            left = snaps[line["product_id"]]["stock"] - line["quantity"]
            txn.update(db.collection(PRODUCTS).document(line["product_id"]),
                       {"stock": left, "updated_time": gcf.SERVER_TIMESTAMP})
        now = clock.utcnow()
        order = {
            "order_id": order_id,
            "uid": uid,
            "user_ref": user_ref(db, uid),
            "items": [{**line, "product_ref": db.collection(PRODUCTS).document(line["product_id"])} for line in priced],
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
        }
        txn.create(order_ref, order)
        events.publish(
            txn,
            OrderPlaced(order_id=order_id, uid=uid, total=total, currency=currency,
                        items=[Line(**line) for line in priced]),
            subject=f"{ORDERS}/{order_id}", correlation_id=correlation_id, db=db,
        )
        return order

    # A hot product under heavy contention ends as `aborted` (retryable) after the
    # client's 5 attempts, rather than holding the caller for a minute.
    return answer(place(db.transaction()))


def answer(order: dict[str, Any]) -> dict[str, Any]:
    return {
        "order_id": order["order_id"],
        "status": order["status"],
        "total": order["total"],
        "currency": order["currency"],
        "items": [{k: line[k] for k in ("product_id", "name", "unit_price", "quantity")} for line in order["items"]],
    }


# ---- transitions ---------------------------------------------------------------

def _release_stock(txn, db, order: dict[str, Any]) -> None:
    for line in order["items"]:
        txn.update(db.collection(PRODUCTS).document(line["product_id"]),
                   {"stock": gcf.Increment(line["quantity"]), "updated_time": gcf.SERVER_TIMESTAMP})


def _transition(txn, ref, order: dict, target: str, by: str, extra: dict | None = None) -> None:
    states.check(order["status"], target, order_id=ref.id)
    now = clock.utcnow()
    txn.update(ref, {
        "status": target,
        "updated_time": now,
        f"{target}_time": now,
        "history": gcf.ArrayUnion([{"status": target, "at": now, "by": by}]),
        **(extra or {}),
    })


def _read_order(txn, ref) -> dict[str, Any]:
    snap = ref.get(transaction=txn)
    if not snap.exists:
        raise NotFoundError(f"No order {ref.id}.", details={"order_id": ref.id})
    return snap.to_dict()


def cancel(db, txn, ref, order: dict, *, by: str, reason: str) -> None:
    """Cancels an order (in the caller's transaction): stock released, order.cancelled published."""
    was_paid = order["status"] == states.PAID
    _transition(txn, ref, order, states.CANCELLED, by, {"cancel_reason": reason})
    if order["status"] in states.HOLDS_STOCK:
        _release_stock(txn, db, order)
    events.publish(
        txn,
        OrderCancelled(order_id=ref.id, uid=order["uid"], reason=reason, was_paid=was_paid,
                       payment_id=order.get("payment_id"), total=order["total"], currency=order["currency"]),
        subject=f"{ORDERS}/{ref.id}", db=db,
    )


def cancel_by_caller(db, *, order_id: str, uid: str, role: str) -> str:
    ref = db.collection(ORDERS).document(order_id)

    @gcf.transactional
    def run(txn) -> str:
        order = _read_order(txn, ref)
        staff = role in ("staff", "admin")
        if not staff and order["uid"] != uid:
            raise PermissionDeniedError("This is not your order.", details={"order_id": order_id})
        if not states.cancellable(order["status"]):
            raise FailedPreconditionError(
                f"Order {order_id} is {order['status']} and can no longer be cancelled.",
                details={"order_id": order_id, "status": order["status"]},
            )
        cancel(db, txn, ref, order, by=uid, reason="cancelled_by_staff" if staff and order["uid"] != uid else "cancelled_by_customer")
        return states.CANCELLED

    return run(db.transaction())


def mark_fulfilled(db, *, order_id: str, by: str) -> str:
    ref = db.collection(ORDERS).document(order_id)

    @gcf.transactional
    def run(txn) -> str:
        order = _read_order(txn, ref)
        _transition(txn, ref, order, states.FULFILLED, by)
        events.publish(txn, OrderFulfilled(order_id=order_id, uid=order["uid"]), subject=f"{ORDERS}/{order_id}", db=db)
        return states.FULFILLED

    return run(db.transaction())


def on_payment_succeeded(db, txn, data) -> None:
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if order["status"] == states.PAID and order.get("payment_id") == data.payment_id:
        return
    if data.amount != order["total"] or data.currency != order["currency"]:
        raise FailedPreconditionError(
            f"Payment {data.payment_id} of {data.amount} {data.currency} does not match order "
            f"{data.order_id} ({order['total']} {order['currency']})."
        )
    _transition(txn, ref, order, states.PAID, "payments", {"payment_id": data.payment_id})
    events.publish(
        txn,
        OrderPaid(order_id=data.order_id, uid=order["uid"], total=order["total"], currency=order["currency"],
                  payment_id=data.payment_id),
        subject=f"{ORDERS}/{data.order_id}", db=db,
    )


def on_payment_failed(db, txn, data) -> None:
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if order["status"] == states.CANCELLED:
        return  # already cancelled (by the customer or the expiry job)
    cancel(db, txn, ref, order, by="payments", reason="payment_failed")


def on_payment_refunded(db, txn, data) -> None:
    ref = db.collection(ORDERS).document(data.order_id)
    order = _read_order(txn, ref)
    if order["status"] == states.REFUNDED:
        return
    _transition(txn, ref, order, states.REFUNDED, "payments")
    events.publish(
        txn,
        OrderRefunded(order_id=data.order_id, uid=order["uid"], total=order["total"], currency=order["currency"]),
        subject=f"{ORDERS}/{data.order_id}", db=db,
    )


def expire_unpaid(db, *, now: dt.datetime | None = None, limit: int = 200) -> list[str]:
    """Cancels pending orders whose payment window closed, releasing their stock."""
    now = now or clock.utcnow()
    due = (
        db.collection(ORDERS)
        .where(filter=FieldFilter("status", "==", states.PENDING_PAYMENT))
        .where(filter=FieldFilter("expires_at", "<=", now))
        .limit(limit)
        .stream()
    )
    cancelled = []
    for snap in due:
        ref = snap.reference

        @gcf.transactional
        def run(txn, ref=ref) -> bool:
            order = _read_order(txn, ref)
            if order["status"] != states.PENDING_PAYMENT or order["expires_at"] > now:
                return False
            cancel(db, txn, ref, order, by="expiry", reason="payment_timeout")
            return True

        if run(db.transaction()):
            cancelled.append(ref.id)
    return cancelled


def erase(db, uid: str) -> None:
    """Orders are kept for accounting with the person removed; pending ones are cancelled."""
    query = db.collection(ORDERS).where(filter=FieldFilter("uid", "==", uid)).limit(200)
    while True:
        snaps = list(query.stream())
        if not snaps:
            return
        for snap in snaps:
            ref = snap.reference

            @gcf.transactional
            def cancel_pending(txn, ref=ref) -> None:
                order = _read_order(txn, ref)
                if order["status"] == states.PENDING_PAYMENT:
                    cancel(db, txn, ref, order, by="erasure", reason="account_deleted")

            @gcf.transactional
            def anonymise(txn, ref=ref) -> None:
                order = _read_order(txn, ref)
                if order["uid"] != uid:
                    return
                history = [{**h, "by": DELETED_USER if h.get("by") == uid else h.get("by")}
                           for h in order.get("history", [])]
                txn.update(ref, {"uid": DELETED_USER, "user_ref": None, "anonymised": True, "history": history})

            cancel_pending(db.transaction())
            anonymise(db.transaction())
