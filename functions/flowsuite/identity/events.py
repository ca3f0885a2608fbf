"""Events the identity domain publishes: the contracts live in ``flowsuite.contracts.identity``,
where subscribers in other domains import them from."""

from flowsuite.contracts.identity import (
    EmailChanged,
    RoleChanged,
    UserCreated,
    UserDeleted,
)

__all__ = [
    "UserCreated",
    "RoleChanged",
    "UserDeleted",
    "EmailChanged",
]
