"""Event contracts: the data of every event type, by the domain that publishes it.

They live outside the domains so that a subscriber depends on the contract, never
on the publishing domain: orders and payments subscribe to each other's events
without importing each other, and the kernel's erasure registry subscribes to
``identity.user_deleted`` without importing identity. A contract module imports
only ``flowsuite.core.events``. Each domain's ``events.py`` re-exports its own.
"""
