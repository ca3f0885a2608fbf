"""Requests and answers of the orders callables."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from flowsuite.core.models import DocId, IdempotentRequest, Request, Response
from flowsuite.orders import config

Currency = Literal[config.CURRENCIES]  # type: ignore[valid-type]


class UpsertProduct(IdempotentRequest):
    product_id: DocId | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: str = Field(default="", max_length=5000)
    image_url: str = Field(default="", max_length=2000)
    price: int = Field(ge=0, le=100_000_000, description="In the currency's smallest unit (cents).")
    currency: Currency
    stock: int | None = Field(default=None, ge=0, le=1_000_000,
                              description="Units on hand. Required to create a product; to change it on an "
                                          "existing one, send expected_stock too (or use stock_delta).")
    expected_stock: int | None = Field(default=None, ge=0, le=1_000_000,
                                       description="The stock the edit form loaded: `stock` is written only if "
                                                   "it is still that (orders placed since refuse the edit).")
    stock_delta: int | None = Field(default=None, ge=-1_000_000, le=1_000_000,
                                    description="Units to add (or remove, negative) whatever orders hold meanwhile.")
    active: bool = True
    stock_shards: int | None = Field(
        default=None, ge=0, le=config.MAX_STOCK_SHARDS,
        description="Flash sales: split the stock across this many shards (2 or more) so concurrent buyers "
                    "do not contend on one document; 0 or 1 keeps it on the product; left out, the product keeps "
                    "what it has. Staff set it for a hot product.",
    )

    @field_validator("image_url")
    @classmethod
    def url_or_empty(cls, v: str) -> str:
        if v and not v.startswith(("https://", "http://", "gs://")):
            raise ValueError("must be an http(s) or gs:// URL")
        return v


class ProductAnswer(Response):
    product_id: str
    name: str
    price: int
    currency: str
    stock: int
    active: bool
    stock_shards: int = 0


class ArchiveProduct(Request):
    product_id: DocId


class LineRequest(Request):
    product_id: DocId
    quantity: int = Field(ge=1, le=config.MAX_QUANTITY)


class PlaceOrder(IdempotentRequest):
    items: list[LineRequest] = Field(min_length=1, max_length=config.MAX_LINES)

    @field_validator("items")
    @classmethod
    def distinct_products(cls, items: list[LineRequest]) -> list[LineRequest]:
        seen: set[str] = set()
        for line in items:
            if line.product_id in seen:
                raise ValueError(f"product {line.product_id} appears twice; give it one line with the total quantity")
            seen.add(line.product_id)
        return items


class LineAnswer(Response):
    product_id: str
    name: str
    unit_price: int
    quantity: int


class OrderAnswer(Response):
    order_id: str
    status: str
    total: int
    currency: str
    items: list[LineAnswer]


class OrderRef(Request):
    order_id: DocId


class OrderStatusAnswer(Response):
    order_id: str
    status: str


class RunExpiry(Request):
    pass


class ExpiryAnswer(Response):
    cancelled: list[str]
    checked_at: dt.datetime
