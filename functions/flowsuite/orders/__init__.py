"""Orders: products, orders priced on the server with atomic stock, the order state machine."""
