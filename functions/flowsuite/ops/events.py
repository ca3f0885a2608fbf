"""Events the ops domain publishes: the contracts live in ``flowsuite.contracts.ops``,
where subscribers in other domains import them from."""

from flowsuite.contracts.ops import (
    ProbeSent,
    SweepFinished,
)

__all__ = [
    "ProbeSent",
    "SweepFinished",
]
