"""Reports on runs and event logs: tables, the analytic Markov view, plots and calibration.

- `tables`: pandas DataFrames from a `RunResult` (occupancy per tick with a datetime index,
  events per trigger per tick, transition counts and veto rates), reading an event log
  (JSONL/CSV/DataFrame) and the occupancy it implies.
- `analytic`: the per-tick transition matrix, transient occupancy from the initial state
  (matrix powers, the engine's convention) and the stationary distribution.
- `plots`: matplotlib figures (Agg-safe, inline in Jupyter): occupancy simulated vs analytic
  vs observed, event rate per trigger, transition-count heatmap, fitted vs configured.
- `fit`: calibration: per-tick transition probabilities fitted by maximum likelihood from an
  event log, with 95% Wilson intervals and the log-likelihood.

The submodules import numpy, pandas and matplotlib; ``import dogesim`` does not import this
package, and importing this package imports none of its submodules.
"""

from __future__ import annotations

__all__ = ["analytic", "fit", "plots", "tables"]
