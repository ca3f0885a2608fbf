"""The shared kernel: callables, events, errors, clients, logging, settings."""
