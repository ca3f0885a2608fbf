"""The erasure registry moved into the kernel (``flowsuite.core.erasure``); kept importable here."""

from flowsuite.core.erasure import ERASERS, Eraser, delete_query, eraser

__all__ = ["ERASERS", "Eraser", "delete_query", "eraser"]
