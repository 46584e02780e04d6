"""Real panels of states, as event logs with a roster, ready for `dogesim.report`.

- `Panel`: an event log, its roster (everyone and their state at the window start, with
  weights and covariates), the states, the tick grid and the citation; `Panel.observe()`
  places it on the grid for the estimators.
- `from_wide(frame, ...)`: any wide panel (one row per subject, one column per period) as
  a `Panel`.
- `mvad()`: McVicar & Anyadike-Danes' 712 young people in Northern Ireland, followed
  monthly for six years after compulsory school (July 1993 - June 1999).

Importing this package imports numpy and pandas only.
"""

from __future__ import annotations

from dogesim.datasets.panels import Panel, from_wide, mvad

__all__ = ["Panel", "from_wide", "mvad"]
