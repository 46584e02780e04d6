"""Reports on runs and event logs: tables, the analytic Markov view, plots and calibration.

- `tables`: pandas DataFrames from a `RunResult` (occupancy per tick with a datetime index,
  events per trigger per tick, transition counts and veto rates), reading an event log
  (JSONL/CSV/DataFrame) and the occupancy it implies.
- `analytic`: the per-tick transition matrix, transient occupancy from the initial state
  (matrix powers, the engine's convention) and the stationary distribution.
- `plots`: matplotlib figures (Agg-safe, inline in Jupyter): occupancy simulated vs analytic
  vs observed, event rate per trigger, transition-count heatmap, fitted vs configured.
- `fit`: calibration: per-tick transition probabilities fitted by maximum likelihood from an
  event log (ISO or epoch times, survey weights, a roster of silent subjects, one fit per
  group), with 95% Wilson intervals, the log-likelihood and the initial mix.
- `observed`: an event log observed on a tick grid (rosters, weights, calendar months).
- `spells`: spell lengths with censoring, Kaplan–Meier curves, fitted dwell laws.
- `timevarying`: chances by month of year or by age, with a likelihood-ratio test.
- `compare`: observed vs simulated occupancy shares (TVD per tick) and spell KS distances.

The submodules import numpy, pandas and matplotlib; ``import dogesim`` does not import this
package, and importing this package imports none of its submodules.
"""

from __future__ import annotations

__all__ = ["analytic", "compare", "fit", "observed", "plots", "spells", "tables", "timevarying"]
