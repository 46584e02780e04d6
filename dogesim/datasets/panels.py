"""Wide panels of states turned into event logs with a roster.

- `Panel`: the log, roster, states, grid and citation of one panel.
- `from_wide(frame, ...)`: one row per subject and one state column per period -> `Panel`.
- `mvad(path=None)`: the McVicar & Anyadike-Danes school-to-work panel.

How a panel becomes a log (the engine's conventions, see `dogesim.report.observed`): the
state in the first period is each subject's state at the window start (the roster), and
tick ``k`` is period ``k + 1``: a change between periods ``k`` and ``k + 1`` is an event at
tick ``k``, at the time period ``k + 1`` begins. A simulation of ``periods - 1`` ticks from
the first period's mix then has, after tick ``k``, the occupancy of period ``k + 1``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from dogesim.errors import DogesimError

__all__ = ["MVAD_CITATION", "MVAD_STATES", "Panel", "from_wide", "mvad"]

#: The six activity states of the MVAD panel.
MVAD_STATES = ("school", "FE", "HE", "employment", "training", "joblessness")

#: Where the MVAD data come from, to cite with any result drawn from them.
MVAD_CITATION = (
    "McVicar, D. and Anyadike-Danes, M. (2002). Predicting successful and unsuccessful "
    "transitions from school to work by using sequence methods. Journal of the Royal "
    "Statistical Society, Series A, 165(2), 317-334. Data as distributed with the R package "
    "TraMineR (Gabadinho, Ritschard, Mueller and Studer 2011, Journal of Statistical "
    "Software 40(4)) and the Python package sequenzo."
)


@dataclass
class Panel:
    """A panel as an event log and roster.

    Attributes:
        events: ``subject``, ``timestamp`` (epoch ms), ``from_state``, ``to_state``.
        roster: ``subject``, ``state`` (at the window start), ``weight`` and covariates.
        states: the states.
        tick: the tick (``"1mo"`` for a monthly panel, else ms).
        window_start: tick 0's time (epoch ms); `ticks` the window length.
        wide: the panel as read (one row per subject).
        citation: whom to cite.
    """

    events: pd.DataFrame
    roster: pd.DataFrame
    states: tuple[str, ...]
    tick: int | str
    window_start: int
    ticks: int
    wide: pd.DataFrame = field(repr=False)
    citation: str = ""

    def observe(self, *, weight: str | None = None, by: str | None = None) -> Any:
        """The panel as `dogesim.report.observed.Observed` (with weights / groups if named)."""
        from dogesim.report.observed import observe

        return observe(
            self.events,
            tick=self.tick,
            states=self.states,
            window_start=self.window_start,
            ticks=self.ticks,
            roster=self.roster,
            weight=weight,
            by=by,
        )

    def fit_options(self) -> dict[str, Any]:
        """Keyword arguments for `dogesim.report.fit.fit_event_log` on this panel."""
        return {
            "tick_ms": self.tick,
            "states": list(self.states),
            "window_start": self.window_start,
            "ticks": self.ticks,
            "roster": self.roster,
        }


def _month_start(stamp: pd.Timestamp, months: int) -> int:
    moved = (stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")) + (
        pd.DateOffset(months=months)
    )
    return int((moved - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, unit="ms"))


def from_wide(
    frame: pd.DataFrame,
    *,
    subject: str,
    periods: Sequence[str],
    start: str | pd.Timestamp,
    states: Sequence[str] | None = None,
    covariates: Sequence[str] = (),
    weight: str | None = None,
    citation: str = "",
) -> Panel:
    """A monthly wide panel (one row per subject, one state column per month) as a `Panel`.

    Args:
        frame: the panel.
        subject: the subject id column.
        periods: the state columns, in time order, one calendar month apart.
        start: the first period's month (e.g. ``"1993-07"``).
        states: the states (default: those seen, in order of first appearance).
        covariates: columns copied to the roster.
        weight: the weight column, copied to the roster as ``weight`` (default weight 1).
        citation: whom to cite.
    """
    if len(periods) < 2:
        raise DogesimError(f"from_wide: {len(periods)} periods; a panel needs at least two")
    missing = [
        c
        for c in [subject, *periods, *covariates, *([weight] if weight else [])]
        if c not in frame.columns
    ]
    if missing:
        raise DogesimError(f"from_wide: no columns {missing}; columns: {list(frame.columns)}")
    grid = frame[list(periods)].astype(str).to_numpy()
    seen = list(dict.fromkeys(grid.ravel().tolist()))
    states = tuple(states) if states is not None else tuple(seen)
    unknown = sorted(set(seen) - set(states))
    if unknown:
        raise DogesimError(f"from_wide: states {unknown} are not in {list(states)}")
    first = pd.Timestamp(start)
    ids = frame[subject].to_numpy()
    # A change between periods k and k+1 is an event at tick k, when period k+1 begins.
    who, period = np.nonzero(grid[:, 1:] != grid[:, :-1])
    stamps = np.array([_month_start(first, k + 1) for k in range(len(periods) - 1)])
    events = pd.DataFrame(
        {
            "subject": ids[who],
            "timestamp": stamps[period],
            "from_state": grid[who, period],
            "to_state": grid[who, period + 1],
        }
    ).sort_values(["timestamp", "subject"], kind="stable")
    roster = pd.DataFrame({"subject": ids, "state": grid[:, 0]})
    roster["weight"] = frame[weight].to_numpy(dtype=float) if weight else 1.0
    for column in covariates:
        roster[column] = frame[column].to_numpy()
    return Panel(
        events.reset_index(drop=True),
        roster,
        states,
        "1mo",
        int(stamps[0]),
        len(periods) - 1,
        frame,
        citation,
    )


def _mvad_path() -> str:
    """mvad.csv inside an installed `sequenzo`, found without importing it (its import is
    heavy and needs compiled extensions)."""
    try:
        dist = metadata.distribution("sequenzo")
    except metadata.PackageNotFoundError:
        raise DogesimError(
            "mvad(): the MVAD panel comes with the sequenzo package; `pip install --no-deps "
            "sequenzo` (its data are all that is used), or pass path= to a copy of mvad.csv"
        ) from None
    return str(dist.locate_file("sequenzo/datasets/mvad.csv"))


def mvad(path: str | os.PathLike[str] | None = None) -> Panel:
    """McVicar & Anyadike-Danes' panel: 712 young people, 72 months from July 1993.

    Each month one of school, FE (further education), HE (higher education), employment,
    training, joblessness. The roster holds the July 1993 state, the survey weight
    (``weight``) and the covariates (``male``, ``catholic``, ``Belfast``, ``N.Eastern``,
    ``Southern``, ``S.Eastern``, ``Western``, ``Grammar``, ``funemp``, ``gcse5eq``,
    ``fmpr``, ``livboth``, as "yes"/"no"). Ticks are calendar months; tick 0 is August
    1993 and the window has 71 ticks (see the module docstring).

    Args:
        path: a copy of ``mvad.csv`` (TraMineR's layout); default: the one in the
            installed sequenzo package.

    Cite `MVAD_CITATION` with any result.
    """
    source = os.fspath(path) if path is not None else _mvad_path()
    if not os.path.isfile(source):
        raise DogesimError(f"mvad(): {source}: no such file")
    frame = pd.read_csv(source)
    periods = [c for c in frame.columns if len(c) == 6 and c[3] == "." and c[4:].isdigit()]
    if len(periods) != 72:
        raise DogesimError(
            f"mvad(): {source} has {len(periods)} monthly columns like 'Jul.93'; expected 72"
        )
    covariates = [c for c in frame.columns if c not in {"id", "weight", *periods}]
    return from_wide(
        frame,
        subject="id",
        periods=periods,
        start="1993-07-01",
        states=MVAD_STATES,
        covariates=covariates,
        weight="weight",
        citation=MVAD_CITATION,
    )
