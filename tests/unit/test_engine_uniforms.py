"""The engine's buffered uniforms give the generator's own stream, draw for draw."""

from __future__ import annotations

import numpy as np

from dogesim.engine.uniforms import BLOCK, Uniforms


def test_taken_uniforms_are_the_generators_own_draws() -> None:
    """Uniforms taken a few at a time (across a refill) equal one plain ``random`` call."""
    uniforms = Uniforms(np.random.default_rng(3))
    taken: list[float] = []
    for n in [1, 5, 17, BLOCK - 20, 40, 2 * BLOCK]:
        taken.extend(uniforms.take(n))
    assert taken == np.random.default_rng(3).random(len(taken)).tolist()


def test_sync_puts_the_generator_after_the_uniforms_taken() -> None:
    """Other draws made after `sync` come where they would with no buffer at all."""
    buffered = Uniforms(np.random.default_rng(11))
    plain = np.random.default_rng(11)
    for n in [3, 9, 1]:
        assert buffered.take(n) == plain.random(n).tolist()
        rng = buffered.sync()
        assert rng.poisson(4.0, 6).tolist() == plain.poisson(4.0, 6).tolist()
        assert rng.bit_generator.state == plain.bit_generator.state
