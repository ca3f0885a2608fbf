"""orders_place's request and answer, in a module of their own: an instance serving it
(``flowsuite.orders.place``) builds these models alone, not every orders callable's;
``flowsuite.orders.models`` re-exports them."""

from pydantic import Field, field_validator

from flowsuite.core.models import DocId, IdempotentRequest, Request, Response
from flowsuite.orders import config


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
