"""Computed bounds for the cohort tests (no scipy): chi-square critical values, a
goodness-of-fit check against a pmf, and a normal bound for sums of independent counts.

- `chi_square_critical(df, alpha)`: the upper `alpha` quantile of chi-square with `df`
  degrees of freedom, by bisection on its CDF ``P(df/2, x/2)``.
- `fits_pmf(observed, pmf, alpha)`: Pearson's test of integer samples against a pmf on
  ``1 .. len(pmf)`` (bins with expected counts under 5 are pooled); True when not rejected.
- `Z_ALPHA`: the two-sided normal bound at a false-alarm rate of 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dogesim.laws import regularized_gamma

#: Chance of a false alarm per check.
ALPHA = 1e-6
#: |Z| above this has two-sided chance 1e-6 under a standard normal.
Z_ALPHA = 4.8916


def chi_square_critical(df: int, alpha: float = ALPHA) -> float:
    """``x`` with ``P(chi2_df > x) = alpha``."""
    low, high = 0.0, 10.0 * df + 200.0
    for _ in range(200):
        mid = (low + high) / 2
        if 1.0 - regularized_gamma(df / 2, mid / 2) > alpha:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def chi_square(observed: Sequence[int] | np.ndarray, pmf: np.ndarray) -> tuple[float, int]:
    """(statistic, degrees of freedom) of samples `observed` (values ``1 .. len(pmf)``;
    larger values count in a tail bin with the pmf's remaining mass). A sample where the
    law puts no mass makes the statistic infinite."""
    samples = np.asarray(observed, dtype=np.int64)
    n = len(samples)
    kmax = len(pmf)
    counts = np.bincount(np.minimum(samples, kmax + 1), minlength=kmax + 2)[1:]
    probs = np.concatenate((pmf, [max(0.0, 1.0 - float(pmf.sum()))]))
    if counts[probs == 0].sum() > 0:
        return math.inf, 1
    pooled_obs, pooled_exp = [], []
    obs, exp = 0.0, 0.0
    for c, p in zip(counts.tolist(), probs.tolist(), strict=True):
        obs, exp = obs + c, exp + n * p
        if exp >= 5.0:
            pooled_obs.append(obs)
            pooled_exp.append(exp)
            obs, exp = 0.0, 0.0
    if exp > 0 and pooled_exp:
        pooled_obs[-1] += obs
        pooled_exp[-1] += exp
    o, e = np.asarray(pooled_obs), np.asarray(pooled_exp)
    return float(((o - e) ** 2 / e).sum()), len(o) - 1


def fits_pmf(observed: Sequence[int] | np.ndarray, pmf: np.ndarray, alpha: float = ALPHA) -> bool:
    """True when Pearson's chi-square test does not reject `observed` ~ `pmf`."""
    statistic, df = chi_square(observed, pmf)
    if df == 0:
        return True
    return statistic <= chi_square_critical(df, alpha)
