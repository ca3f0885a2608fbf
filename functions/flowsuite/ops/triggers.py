"""Ops document triggers (``ops_on_*``): an instance serving one imports this module alone
(``registry.own_module``); ``flowsuite.ops.functions`` re-exports them."""

from __future__ import annotations

from flowsuite.core import bus, clients
from flowsuite.core.erasure import eraser
from flowsuite.ops import service
from flowsuite.ops.events import ProbeSent

__all__ = ["ops_on_probe", "ops_on_user_deleted"]


@bus.subscriber(ProbeSent)
def ops_on_probe(event, txn) -> None:
    """Records that a probe went through the bus."""
    service.record_probe(clients.firestore(), txn, event)


@eraser(collections=(service.IDEMPOTENCY_RECORDS,), needs_event=True)
def ops_on_user_deleted(db, uid: str, event) -> None:
    service.erase(db, uid, event_id=event.id)
