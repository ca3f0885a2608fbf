"""Orders: products, orders priced on the server with atomic stock, the order state machine."""


OPTIONS = {"max_instances": 50}
