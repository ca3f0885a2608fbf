"""Ops: the bus's redelivery, sweep and dead letters; probes; health."""
