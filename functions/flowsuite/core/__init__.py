"""The shared kernel: callables, events, the bus, erasure, errors, clients, logging, settings.

The kernel imports no domain (a unit test parses every import): domains register
what the kernel needs from them (client factories, options, erasers), and event
contracts live in ``flowsuite.contracts``.
"""
