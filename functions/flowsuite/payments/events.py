"""Events the payments domain publishes: the contracts live in ``flowsuite.contracts.payments``,
where subscribers in other domains import them from."""

from flowsuite.contracts.payments import (
    PaymentCanceled,
    PaymentDisputed,
    PaymentFailed,
    PaymentRefunded,
    PaymentRefundFailed,
    PaymentSucceeded,
)

__all__ = [
    "PaymentSucceeded",
    "PaymentFailed",
    "PaymentCanceled",
    "PaymentRefunded",
    "PaymentDisputed",
    "PaymentRefundFailed",
]
