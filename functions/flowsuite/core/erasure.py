"""The erasure registry, a kernel job: every domain that holds user data joins it.

    @eraser(collections=("orders",))
    def erase_orders(db, uid: str) -> None: ...

registers the domain's eraser and turns it into that domain's subscriber of
``identity.user_deleted`` (``<domain>_on_user_deleted``). A test checks that every
domain has joined, so a new domain cannot forget erasure. The registry knows the
event's contract (``flowsuite.contracts.identity``), not the identity domain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from flowsuite.contracts.identity import UserDeleted
from flowsuite.core import bus, clients, log
from flowsuite.core.options import domain_of


@dataclasses.dataclass(frozen=True)
class Eraser:
    domain: str
    collections: tuple[str, ...]
    erase: Callable[..., None]


ERASERS: dict[str, Eraser] = {}  # those this instance imported; all_erasers() for every one


def all_erasers() -> dict[str, Eraser]:
    """Every domain's eraser, importing the domains this instance has not (see
    ``bus.all_subscribers``): the last eraser must wait for all of them."""
    bus.all_subscribers()
    return ERASERS


def eraser(*, collections: tuple[str, ...], needs_event: bool = False, **trigger_options):
    def decorate(erase: Callable[..., None]) -> Callable:
        domain = domain_of(erase.__module__)
        ERASERS[domain] = Eraser(domain, tuple(collections), erase)

        def handler(event) -> None:
            if needs_event:
                erase(clients.firestore(), event.data.uid, event)
            else:
                erase(clients.firestore(), event.data.uid)
            log.info("user data erased", erased_uid=event.data.uid, collections=list(collections))

        handler.__name__ = handler.__qualname__ = f"{domain}_on_user_deleted"
        handler.__module__ = erase.__module__
        handler.__doc__ = f"Erases what {domain} holds for a deleted user ({', '.join(collections)})."
        # Erasure spans many documents and may exceed one transaction: it is
        # written to be idempotent instead (deleting what is gone is a no-op).
        return bus.subscriber(UserDeleted, transactional=False, **trigger_options)(handler)

    return decorate


def delete_query(db, query, batch_size: int = 300) -> int:
    """Deletes every document a query matches, in batches. Returns how many."""
    total = 0
    while True:
        snaps = list(query.limit(batch_size).stream())
        if not snaps:
            return total
        batch = db.batch()
        for snap in snaps:
            batch.delete(snap.reference)
        batch.commit()
        total += len(snaps)
