"""flowsuite: a backend for FlutterFlow apps, split into domain services.

Importing this package does no work: clients are built on first use
(`flowsuite.core.clients`), and each domain's functions live in its own
``functions.py`` that ``main.py`` imports only when needed (`flowsuite.registry`).
"""
