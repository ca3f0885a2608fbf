"""Orders: products, orders priced on the server with atomic stock, the order state machine."""

from flowsuite.core import options as _options

OPTIONS = _options.declare(__name__, max_instances=50)
