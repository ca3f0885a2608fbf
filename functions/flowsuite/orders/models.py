"""Requests and answers of the orders callables (orders_place's own are in ``place_models``)."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from flowsuite.core.models import DocId, IdempotentRequest, Request, Response
from flowsuite.orders import config
from flowsuite.orders.place_models import LineAnswer as LineAnswer
from flowsuite.orders.place_models import LineRequest as LineRequest
from flowsuite.orders.place_models import OrderAnswer as OrderAnswer
from flowsuite.orders.place_models import PlaceOrder as PlaceOrder

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
