"""Helpers for tests that shop: products and orders on the emulators."""

from __future__ import annotations

import uuid

from tests import harness
from tests.harness import call


def product(db, *, price: int = 1250, stock: int = 10, currency: str = "usd", active: bool = True, name: str = "Mug") -> str:
    product_id = f"p-{uuid.uuid4().hex[:10]}"
    db.document(f"products/{product_id}").set(
        {"name": name, "description": "", "image_url": "", "price": price, "currency": currency,
         "stock": stock, "active": active}
    )
    return product_id


def place(user, items: list[tuple[str, int]], key: str | None = None, headers=None) -> dict:
    return call("orders_place", {"items": [{"product_id": p, "quantity": q} for p, q in items],
                                 "idempotency_key": key or uuid.uuid4().hex}, user=user, headers=headers)


def stock(db, product_id: str) -> int:
    return harness.doc(db, f"products/{product_id}")["stock"]


def order(db, order_id: str) -> dict:
    return harness.doc(db, f"orders/{order_id}")


def events_of(db, event_type: str, **match) -> list[dict]:
    docs = [s.to_dict() for s in db.collection(f"topics/{event_type}/events").stream()]
    return [d for d in docs if all(d["data"].get(k) == v for k, v in match.items())]


def publish(db, data, subject: str = "test") -> str:
    from flowsuite.core import events

    batch = db.batch()
    envelope = events.publish(batch, data, subject=subject, db=db)
    batch.commit()
    return envelope.id
