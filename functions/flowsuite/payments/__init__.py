"""Payments: Stripe PaymentIntents for orders, a verified webhook, refunds."""


from firebase_functions.options import MemoryOption

from flowsuite.core import clients as _clients
from flowsuite.core import options as _options
from flowsuite.core import settings as _settings
from flowsuite.core import tracing as _tracing

# Options every payments function gets (memory, instances, timeouts); secrets are
# declared per function that talks to Stripe.
OPTIONS = _options.declare(__name__, memory=MemoryOption.MB_512, max_instances=_settings.PAYMENTS_MAX_INSTANCES,
                           timeout_sec=60)


def _stripe_client():
    """A StripeClient built on first use: ``stripe`` alone costs ~0.35 s of import."""
    import stripe as stripe_sdk  # noqa: PLC0415

    from flowsuite.payments import config  # noqa: PLC0415

    return stripe_sdk.StripeClient(
        config.STRIPE_SECRET_KEY.value,
        base_addresses={"api": config.api_base()},
        max_network_retries=2,
        http_client=_tracing.instrument_http_client(stripe_sdk.new_default_http_client(), "stripe"),
    )


_clients.register("stripe", _stripe_client)
