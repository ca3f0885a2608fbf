"""Events the ops domain publishes."""

from flowsuite.core.events import EventData, event_type


@event_type("ops.probe", source="ops")
class ProbeSent(EventData):
    """A synthetic event sent through the bus to check it end to end."""

    probe_id: str
    note: str = ""


@event_type("ops.sweep_finished", source="ops")
class SweepFinished(EventData):
    """The bus sweep ran; counts of what it redelivered."""

    retried: int
    stalled: int
    lost: int
    processed: int
    errors: int = 0
