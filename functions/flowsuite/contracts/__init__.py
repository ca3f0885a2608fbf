"""Event contracts: the data of every event type, by the domain that publishes it.

They live outside the domains so that a subscriber depends on the contract, never
on the publishing domain: orders and payments subscribe to each other's events
without importing each other, and the kernel's erasure registry subscribes to
``identity.user_deleted`` without importing identity. A contract module imports
only ``flowsuite.core.events``. Each domain's ``events.py`` re-exports its own.

Changing a contract: a new optional field keeps the version. A removed field, a
changed type or a new required field needs the next version in the type's
history and an upcaster from the previous one, next to the model:

    @event_type("order.placed", source="orders", versions={1: "first version", 2: "items carry a sku"})
    class OrderPlaced(EventData): ...

    @upcaster("order.placed", from_version=1)
    def _order_placed_v1(data: dict) -> dict:
        return {**data, "items": [{**line, "sku": line["product_id"]} for line in data["items"]]}

``make contracts`` refuses the change otherwise (see ``flowsuite.core.events``).
"""
