"""The switch between the engine's compiled kernel and its Python loops.

- `NATIVE`: the C module `dogesim.engine._kernel`, or None for the Python loops: when it is
  not built (no compiler at install time) or ``DOGESIM_KERNEL=python`` asks for them.
- `native()`: `NATIVE`, read where a run binds its loops (tests switch paths by setting it).
- `compiled()`: the C module if it is built, whatever ``DOGESIM_KERNEL`` says (for tests).

The C functions are twins of loops in `dogesim.engine.attempts` (`Scalar.run`'s per-tick
attempts, `_run_plain`, the list building of `_feed_batches`): same calls, same order, same
effects when a callback raises. The Python loops stay the reference they are tested against.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["NATIVE", "compiled", "native"]


def compiled() -> ModuleType | None:
    """The compiled module, or None when it is not built."""
    try:
        from dogesim.engine import _kernel
    except ImportError:
        return None
    return _kernel


NATIVE: ModuleType | None = (
    None if os.environ.get("DOGESIM_KERNEL", "").strip().lower() == "python" else compiled()
)


def native() -> ModuleType | None:
    """The compiled kernel in use, or None for the Python loops."""
    return NATIVE
