"""Documents the orders domain owns."""

from __future__ import annotations

from pydantic import BaseModel

from flowsuite.core.documents import DocRef, Document, Timestamp, collection


@collection("products/{product_id}", read="signed-in users (active only), staff (all)", write="orders functions only")
class ProductDoc(Document):
    """A product. Prices are integers in the currency's smallest unit."""

    name: str
    description: str
    image_url: str
    price: int
    currency: str
    stock: int
    active: bool
    created_time: Timestamp
    updated_time: Timestamp


class OrderLine(BaseModel):
    product_id: str
    product_ref: DocRef
    name: str
    unit_price: int
    quantity: int


class StatusChange(BaseModel):
    status: str
    at: Timestamp
    by: str


@collection("orders/{order_id}", read="the owner (uid or user_ref), staff", write="orders functions only")
class OrderDoc(Document):
    """An order: priced on the server, its stock reserved while pending or paid."""

    order_id: str
    uid: str
    user_ref: DocRef
    items: list[OrderLine]
    total: int
    currency: str
    status: str
    payment_id: str | None
    correlation_id: str
    created_time: Timestamp
    updated_time: Timestamp
    expires_at: Timestamp
    history: list[StatusChange]
