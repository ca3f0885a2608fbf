"""Test support shared by the integration tests and the benchmarks: emulator clients and
resets (``harness``), shopping (``shop``) and Stripe on the stand-in (``payments``).

A package of its own, so ``bench/`` imports it instead of reaching into ``tests/``.
"""
