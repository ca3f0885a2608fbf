"""Documents the orders domain owns."""

from pydantic import BaseModel, ConfigDict

from flowsuite.core.documents import DocRef, Document, Timestamp, collection


@collection("products/{product_id}", read="signed-in users (active only), staff (all)", write="orders functions only")
class ProductDoc(Document):
    """A product. Prices are integers in the currency's smallest unit."""

    name: str
    description: str
    image_url: str
    price: int
    currency: str
    stock: int  # a hot product's: a summary of its shards, refreshed every minute (orders_refresh_hot_stock)
    active: bool
    created_time: Timestamp
    updated_time: Timestamp
    stock_shards: int = 0  # 2 or more: a hot product, its stock split across products/{id}/stock_shards/{k}
    stock_refreshed_time: Timestamp | None = None  # when the summary last changed


@collection("products/{product_id}/stock_shards/{shard}", read="nobody (server only)", write="orders functions only")
class StockShardDoc(Document):
    """One shard of a hot product's stock (shard ids 0..stock_shards-1). An order reads a
    random shard and takes from it in its transaction, only if the shard is unchanged since
    it was read, so concurrent buyers write different documents. The app reads the
    product's `stock` summary, never the shards."""

    stock: int
    updated_time: Timestamp


class OrderLine(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built with OrderDoc, never at import (cold start)

    product_id: str
    product_ref: DocRef
    name: str
    unit_price: int
    quantity: int
    stock_shards: int | None = None  # placed while the product was hot: released to one of this many shards


class StatusChange(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: str
    at: Timestamp
    by: str


@collection("orders/{order_id}", read="the owner (uid or user_ref), staff", write="orders functions only",
            read_by={"payments": "an order's owner, status and total, to create its PaymentIntent",
                     "notifications": "an order's status, so a late or replayed notification never announces "
                                      "what is no longer true (a receipt for a refunded order)"})
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
    request_hash: str  # the idempotency key's payload hash (a repeat with another payload is refused)
    cancel_reason: str | None = None  # why it is cancelling or cancelled
    cancelling_time: Timestamp | None = None
    cancelled_time: Timestamp | None = None
    paid_time: Timestamp | None = None
    fulfilled_time: Timestamp | None = None
    refunded_time: Timestamp | None = None
    amount_refunded: int = 0  # refunds so far (a partial refund leaves the order paid)
    dispute_id: str | None = None
    dispute_status: str | None = None  # Stripe's: needs_response, under_review, won, lost, ...
    dispute_closed: bool = False
    dispute_event_time: int = 0  # Stripe's `created` of the newest dispute update applied: an older one is ignored
    anonymised: bool = False  # the account was deleted; kept for accounting
    # Staff must act: a paid order whose customer deleted their account (review_reason
    # "account_deleted"; fulfilling or cancelling it, which refunds it, clears the flag), or a
    # refund of it that failed at Stripe ("refund_failed": the customer has not got the money
    # back; a later full refund clears it).
    needs_review: bool = False
    review_reason: str | None = None
    refund_failure_reason: str | None = None  # Stripe's failure_reason of the last failed refund
    refund_failed_time: Timestamp | None = None  # when payment.refund_failed was published
    full_refund_published_time: Timestamp | None = None  # when the latest full payment.refunded applied was published
    quota_held: bool = False  # counted in order_holds/{uid} (while pending_payment or cancelling)


@collection("order_holds/{uid}", read="nobody (server only)", write="orders functions only")
class OrderHoldDoc(Document):
    """What a user's unpaid orders (pending_payment, cancelling) hold at once, kept in the
    transactions that place them and move them out of those statuses: no stock hoarding
    (`ORDER_MAX_UNPAID_ORDERS`, `ORDER_MAX_UNPAID_UNITS`)."""

    orders: int
    units: int
    updated_time: Timestamp
