"""`Arrivals`: when newcomers come, drawn from one tick with arrivals to the next.

Per tick the number of newcomers is Poisson with mean ``rate * m(t)``, ``m`` the arrivals
profile's multiplier (1 without one). Rather than draw that count at every tick, the engine
draws at the profile's peak rate ``rate * peak``: the gap to the next tick with at least one
candidate is geometric with ``p = 1 - exp(-rate * peak)``, the candidates there are Poisson
conditioned on being at least one, and each is kept with chance ``m(t) / peak`` (thinning a
Poisson count gives a Poisson count). The law per tick is exactly the per-tick one, and
ticks without arrivals cost nothing.
"""

from __future__ import annotations

import math

import numpy as np

from dogesim.rates import Profile

__all__ = ["Arrivals"]


def _positive_poisson(mean: float, rng: np.random.Generator) -> int:
    """A Poisson(`mean`) count given that it is at least 1."""
    if mean > 1.0:  # zero has chance < 1/e: redraw
        count = 0
        while count == 0:
            count = int(rng.poisson(mean))
        return count
    # Rare: invert the conditional distribution, P(k) = e^-m m^k / (k! (1 - e^-m)), k >= 1.
    u = rng.random() * -math.expm1(-mean)
    k, term = 1, mean * math.exp(-mean)
    cumulative = term
    while cumulative < u and term > 0.0:
        k += 1
        term *= mean / k
        cumulative += term
    return k


class Arrivals:
    """The next tick with candidate newcomers, and how many there are."""

    def __init__(self, rate: float, profile: Profile | None) -> None:
        self.peak_rate = rate * (profile.peak if profile is not None else 1.0)
        self.profile = profile
        self.next_tick: int | None = None  # None: no more arrivals
        self.pending = 0

    def plan(self, after: int, rng: np.random.Generator, horizon: int) -> None:
        """Draw the next tick after `after` with candidates, and their number."""
        self.next_tick, self.pending = None, 0
        if self.peak_rate <= 0.0:
            return
        p = -math.expm1(-self.peak_rate)
        tick = after + int(rng.geometric(p)) if p < 1.0 else after + 1
        if tick >= horizon:
            return
        self.next_tick, self.pending = tick, _positive_poisson(self.peak_rate, rng)

    def take(self, timestamp: int, rng: np.random.Generator) -> int:
        """How many of the pending candidates arrive at `timestamp` (the profile thins them)."""
        count = self.pending
        if self.profile is not None and count:
            keep = self.profile.multiplier(timestamp) / self.profile.peak
            count = int(rng.binomial(count, min(keep, 1.0)))
        return count
