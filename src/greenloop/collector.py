"""Pausing Python's cyclic garbage collector around large batches.

A batch that keeps millions of container objects alive (parsed queries,
verdicts, loans, plan rows) makes every full collection walk all of them
again. Reference counting still frees everything outside a cycle while the
collector is off.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, then restore its previous state.

    The pause is process-wide, so other threads run without cyclic
    collection until the block ends.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
