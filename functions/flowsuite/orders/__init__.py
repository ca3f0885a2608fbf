"""Orders: products, orders priced on the server with atomic stock, the order state machine."""

from flowsuite.core import options as _options
from flowsuite.core import settings as _settings

# orders_place is the checkout's first step: ORDERS_MAX_INSTANCES (default 100), see
# docs/production.md, "Capacity plan".
OPTIONS = _options.declare(__name__, max_instances=_settings.ORDERS_MAX_INSTANCES)
