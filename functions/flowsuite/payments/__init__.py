"""Payments: Stripe PaymentIntents for orders, a verified webhook, refunds."""


from firebase_functions.options import MemoryOption

# Options every payments function gets (memory, instances, timeouts); secrets are
# declared per function that talks to Stripe.
OPTIONS = {"memory": MemoryOption.MB_512, "max_instances": 10, "timeout_sec": 60}
