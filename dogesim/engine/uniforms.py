"""`Uniforms`: the engine's uniform draws for quiet ticks, taken from a buffered block.

- `Uniforms`: a block of ``rng.random(BLOCK)`` handed out a few at a time; `sync` puts the
  generator back where the draws taken so far leave it.
- `BLOCK`: how many uniforms one refill draws.

A tick with a few subjects due needs two short lists of uniforms; drawing them with two
``rng.random(n).tolist()`` calls costs more than the rest of the tick. Drawing a block ahead
would shift every other draw of the run (waits in numpy, arrivals, jitter) and make a
checkpoint miss the block's unused part, so `sync` rewinds: it restores the generator's state
from before the block and advances it past the uniforms taken (PCG64 draws one 64-bit word
per double and can jump ahead). Every other draw goes through `sync` first, so the stream is
the same, draw for draw, as with no buffer at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["BLOCK", "Uniforms"]

#: Uniforms drawn per refill.
BLOCK = 4096


class Uniforms:
    """Buffered uniforms over one generator (see the module docstring)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        # Rewinding needs `advance`, which PCG64 (default_rng's) has; others go unbuffered.
        self._buffered = hasattr(rng.bit_generator, "advance")
        self._block: list[float] = []
        self._taken = 0
        self._before: Mapping[str, Any] | None = None  # the state before the block was drawn

    def take(self, n: int) -> list[float]:
        """The next `n` uniforms in [0, 1), as a list."""
        start = self._taken
        end = start + n
        if end > len(self._block):
            if not self._buffered:
                return self._rng.random(n).tolist()
            self.sync()
            self._before = self._rng.bit_generator.state
            self._block = self._rng.random(max(BLOCK, n)).tolist()
            start, end = 0, n
        self._taken = end
        return self._block[start:end]

    def sync(self) -> np.random.Generator:
        """The generator, put where the uniforms taken so far leave it (drops the block)."""
        if self._before is not None:
            bit_generator = self._rng.bit_generator
            bit_generator.state = self._before
            bit_generator.advance(self._taken)  # type: ignore[attr-defined]
            self._before = None
            self._block = []
            self._taken = 0
        return self._rng
