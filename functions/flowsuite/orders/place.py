"""orders_place, in a module of its own: an instance serving it imports this module alone
(``registry.OWN_MODULES``), not the domain's other functions with the bus, the payment events
they subscribe to and erasure; ``flowsuite.orders.functions`` re-exports it."""

from __future__ import annotations

from flowsuite.core import clients, idempotency, settings
from flowsuite.core.callables import CallContext, callable_function
from flowsuite.orders import place_models, service

__all__ = ["orders_place"]


@callable_function(request=place_models.PlaceOrder, response=place_models.OrderAnswer, idempotent=True, own_idempotency=True,
                   min_instances=settings.CHECKOUT_MIN_INSTANCES)
def orders_place(ctx: CallContext, req: place_models.PlaceOrder) -> place_models.OrderAnswer:
    """Places an order priced on the server, reserving its stock."""
    return place_models.OrderAnswer(**service.place_order(
        clients.firestore(), uid=ctx.require_uid(), lines=req.items,
        idempotency_key=req.idempotency_key, correlation_id=ctx.correlation_id,
        payload_hash=idempotency.payload_hash(req.model_dump(mode="json", exclude={"idempotency_key"})),
    ))
