"""Orders functions: thin triggers over ``flowsuite.orders.service``."""

from __future__ import annotations

from firebase_functions import scheduler_fn

from flowsuite.core import clients, clock, options
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.orders import models, service, triggers
from flowsuite.orders.place import orders_place  # a module of its own (registry.OWN_MODULES)
from flowsuite.orders.triggers import *  # noqa: F403 - its document triggers, served alone (registry.own_module)

__all__ = [
    "orders_upsert_product",
    "orders_archive_product",
    "orders_place",
    "orders_cancel",
    "orders_mark_fulfilled",
    "orders_run_expiry",
    "orders_expire_unpaid",
    "orders_refresh_hot_stock",
    *triggers.__all__,
]

STAFF = ("staff", "admin")


@callable_function(request=models.UpsertProduct, response=models.ProductAnswer, roles=STAFF, idempotent=True,
                   own_idempotency=True)
def orders_upsert_product(ctx: CallContext, req: models.UpsertProduct) -> models.ProductAnswer:
    """Creates or updates a product (staff, admin). Prices are in minor units."""
    return models.ProductAnswer(**service.upsert_product(clients.firestore(), req, uid=ctx.uid,
                                                         function=ctx.function))


@callable_function(request=models.ArchiveProduct, response=models.ProductAnswer, roles=STAFF)
def orders_archive_product(ctx: CallContext, req: models.ArchiveProduct) -> models.ProductAnswer:
    """Stops selling a product (staff, admin); existing orders keep it."""
    return models.ProductAnswer(**service.archive_product(clients.firestore(), req.product_id))


@callable_function(request=models.OrderRef, response=models.OrderStatusAnswer)
def orders_cancel(ctx: CallContext, req: models.OrderRef) -> models.OrderStatusAnswer:
    """Cancels an order: its owner while pending or paid; staff until fulfilled. An unpaid order answers
    `cancelling` and becomes `cancelled` once its PaymentIntent is closed at Stripe; a paid one is refunded."""
    status = service.cancel_by_caller(clients.firestore(), order_id=req.order_id, uid=ctx.require_uid(), role=ctx.role)
    return models.OrderStatusAnswer(order_id=req.order_id, status=status)


@callable_function(request=models.OrderRef, response=models.OrderStatusAnswer, roles=STAFF)
def orders_mark_fulfilled(ctx: CallContext, req: models.OrderRef) -> models.OrderStatusAnswer:
    """Marks a paid order fulfilled (staff, admin)."""
    status = service.mark_fulfilled(clients.firestore(), order_id=req.order_id, by=ctx.require_uid())
    return models.OrderStatusAnswer(order_id=req.order_id, status=status)


@callable_function(request=models.RunExpiry, response=models.ExpiryAnswer, roles=("admin",))
def orders_run_expiry(ctx: CallContext, req: models.RunExpiry) -> models.ExpiryAnswer:
    """Starts cancelling unpaid orders past their payment window now (admin)."""
    now = clock.utcnow()
    return models.ExpiryAnswer(cancelled=service.expire_unpaid(clients.firestore(), now=now), checked_at=now)


@options.trigger(scheduler_fn.on_schedule, schedule="every 5 minutes")
def orders_expire_unpaid(event: scheduler_fn.ScheduledEvent) -> None:
    """Starts cancelling unpaid orders past their payment window (their intents are closed, then stock released)."""
    service.expire_unpaid(clients.firestore())


@options.trigger(scheduler_fn.on_schedule, schedule="every 1 minutes")
def orders_refresh_hot_stock(event: scheduler_fn.ScheduledEvent) -> None:
    """Recomputes each hot product's `stock` (what the app shows) from its stock shards."""
    service.refresh_hot_stock(clients.firestore())
