"""Subscribing: a subscriber is a Firestore trigger on its event type's path only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flowsuite.core import events, options
from flowsuite.core.bus.deliver import deliver


@dataclasses.dataclass(frozen=True)
class Subscriber:
    name: str
    event_type: events.EventType
    handler: Callable[..., None]
    transactional: bool
    domain: str


SUBSCRIBERS: dict[str, Subscriber] = {}  # those this instance imported; all_subscribers() for every one


def all_subscribers() -> dict[str, Subscriber]:
    """Every subscriber of the suite. An instance imports only the domain it serves
    (``flowsuite.registry``): the others are imported here, on first need."""
    from flowsuite import registry  # noqa: PLC0415

    registry.load_everything()
    return SUBSCRIBERS


def subscribers_of(event_type: str) -> list[Subscriber]:
    return [s for s in all_subscribers().values() if s.event_type.name == event_type]


def subscriber(event_model: type[events.EventData], *, transactional: bool = True, **trigger_options: Any):
    """Declares a subscriber of one event type; it becomes a Firestore trigger on that type only.

    A transactional handler is called as ``handler(event, txn)``: it reads with
    ``txn`` first, then writes with ``txn``; the bus adds the processed mark to the
    same transaction. A handler with effects outside Firestore (Stripe, FCM, SMTP)
    is declared ``transactional=False``, is called as ``handler(event)`` and guards
    each of those effects with ``event.once(step, perform)``.
    """

    def decorate(handler: Callable[..., None]) -> Callable:
        from firebase_functions import firestore_fn  # noqa: PLC0415

        spec = Subscriber(
            name=handler.__name__,
            event_type=event_model.event_type,
            handler=handler,
            transactional=transactional,
            domain=options.domain_of(handler.__module__),
        )
        SUBSCRIBERS[spec.name] = spec

        def trigger(event) -> None:
            snapshot = event.data
            if snapshot is None:
                return
            deliver(spec, snapshot.to_dict() or {}, via="trigger")

        trigger.__name__ = trigger.__qualname__ = spec.name
        trigger.__doc__ = handler.__doc__
        wrapped = options.trigger(firestore_fn.on_document_created, domain=spec.domain,
                                  document=spec.event_type.trigger_path, **trigger_options)(trigger)
        wrapped.__flowsuite_subscriber__ = spec
        return wrapped

    return decorate
