"""Goodness of fit: observed vs simulated (vs analytic) occupancy shares and spell lengths.

- `occupancy_shares(observed)`: each state's (weighted) share of the population after
  every tick's moves, from an `Observed` log (a file, a DataFrame or `MemorySink` events
  through `observed.observe`).
- `memory_log(events, subject="id")`: `MemorySink` events (`Event` tuples holding live
  subjects) as plain records with the subject's id; `move_record`: a `MemorySink` mapper
  giving such records directly, the subject by identity.
- `tvd(a, b)`: the total variation distance ``½ sum_s |a_s - b_s|`` per tick.
- `spell_ks(a, b)`: per state, the largest gap between two Kaplan–Meier curves.
- `compare(observed, simulated, analytic=None)`: all of it (`Comparison`): TVD per tick with
  its mean and max, against the simulation and the analytic shares, and spell KS per state.
- `share_report(observed=..., result=..., model=...)`: observed (an occupancy table or an
  `Observed` log) vs a run's result vs the analytic line from the run's start, in shares on
  the run's tick grid (`ShareReport`): TVD per tick, its mean and max, in words
  (`lines()`), and the figure (`figure()`, `plots.plot_shares`); the analytic line says when
  it is only an approximation; `log_spell_ks(observed_log, simulated_log, model, ...)`: the
  spell-length KS distances it can carry.

The TVD is the largest difference, over all sets of states, between the shares of the
population the two put in the set: 0 when they agree, 1 when disjoint. With ``n`` subjects
and ``S`` states, two independent samples of the same law differ by about
``sqrt(S / (2 pi n))`` per tick (the mean of ``½ sum |N(0, 2 p_s (1 - p_s) / n)|``), the
floor any comparison of a finite panel sits on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dogesim.errors import DogesimError
from dogesim.model import Model
from dogesim.report import analytic, tables
from dogesim.report.observed import Observed, observe
from dogesim.report.spells import kaplan_meier, spells
from dogesim.result import RunResult

__all__ = [
    "Comparison",
    "ShareReport",
    "compare",
    "log_spell_ks",
    "memory_log",
    "move_record",
    "occupancy_shares",
    "share_report",
    "spell_ks",
    "tvd",
]


def memory_log(events: Iterable[Any], subject: str = "id") -> list[dict[str, Any]]:
    """`MemorySink` events as records whose ``subject`` is the subject's `subject` attribute
    (or the subject itself when it has none)."""
    records = []
    for event in events:
        who = getattr(event.subject, subject, event.subject)
        records.append(
            {
                "subject": who,
                "timestamp": int(event.timestamp),
                "trigger": event.trigger,
                "from_state": event.from_state,
                "to_state": event.to_state,
            }
        )
    return records


def move_record(timestamp: int, subject: Any, transition: Any) -> dict[str, Any]:
    """A `MemorySink` mapper keeping one move as a log record, the subject by identity (for
    subjects without an id, e.g. unhashable ones): ``MemorySink(move_record)``."""
    return {
        "subject": id(subject),
        "timestamp": int(timestamp),
        "trigger": transition.trigger,
        "from_state": transition.from_state,
        "to_state": transition.to_state,
    }


def occupancy_shares(observed: Observed) -> pd.DataFrame:
    """Shares per state after each tick's moves: rows ticks ``0 .. ticks-1``, columns the
    states, each row summing to 1 (weighted by the subjects' weights).

    A subject counts from its start tick on (it is not yet in the population before).
    """
    table = observed.spells()
    ticks = observed.ticks
    index = {s: k for k, s in enumerate(observed.states)}
    col = table["state"].map(index).to_numpy(dtype=np.int64)
    first = table["first"].to_numpy(dtype=np.int64)
    length = table["length"].to_numpy(dtype=np.int64)
    censored = table["censored"].to_numpy(dtype=bool)
    w = table["weight"].to_numpy(dtype=float)
    # A stay entered by the event at tick first-1 holds after ticks first-1 .. exit-1 (or to
    # the end); a first stay holds from the subject's start tick.
    begin = np.where(table["initial"].to_numpy(dtype=bool), first, first - 1)
    end = np.where(censored, ticks, first + length - 1)
    diff = np.zeros((ticks + 1, len(index)))
    np.add.at(diff, (begin, col), w)
    np.add.at(diff, (end, col), -w)
    counts = np.cumsum(diff[:-1], axis=0)
    # A move in the last tick starts a stay with no attempts left (not a spell): add it.
    events = observed.events
    last = events[events["tick"].to_numpy() == ticks - 1]
    if len(last):
        np.add.at(
            counts[-1],
            last["to_state"].map(index).to_numpy(dtype=np.int64),
            observed.roster["weight"].reindex(last["subject"]).to_numpy(dtype=float),
        )
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    return pd.DataFrame(
        shares, columns=list(observed.states), index=pd.RangeIndex(ticks, name="tick")
    )


def _aligned(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    states = list(dict.fromkeys([*a.columns, *b.columns]))
    if len(a) != len(b):
        raise DogesimError(f"tvd: {len(a)} ticks vs {len(b)}; compare windows of equal length")
    left = a.reindex(columns=states, fill_value=0.0).to_numpy(dtype=float)
    right = b.reindex(columns=states, fill_value=0.0).to_numpy(dtype=float)
    return left, right


def tvd(a: pd.DataFrame, b: pd.DataFrame | np.ndarray) -> pd.Series:
    """Total variation distance per tick between two share tables (ticks x states).

    `b` may be an array with `a`'s columns (e.g. the analytic occupancy divided by the
    population).
    """
    other = b if isinstance(b, pd.DataFrame) else pd.DataFrame(np.asarray(b), columns=a.columns)
    left, right = _aligned(a, other)
    return pd.Series(0.5 * np.abs(left - right).sum(axis=1), index=a.index, name="tvd")


def spell_ks(
    a: Observed, b: Observed, *, initial: str = "keep", states: Iterable[str] | None = None
) -> dict[str, float]:
    """Per state, ``max_k |S_a(k) - S_b(k)|`` between the two logs' Kaplan–Meier curves
    (over the lengths both observe); states without spells in either are left out."""
    out: dict[str, float] = {}
    table_a = spells(a, initial=initial)
    table_b = spells(b, initial=initial)
    for state in states or a.states:
        part_a = table_a[table_a["state"] == state]
        part_b = table_b[table_b["state"] == state]
        if not len(part_a) or not len(part_b):
            continue
        curves = [
            kaplan_meier(
                p["length"].to_numpy(),
                p["censored"].to_numpy(dtype=bool),
                p["weight"].to_numpy(dtype=float),
            )
            for p in (part_a, part_b)
        ]
        horizon = min(c.horizon for c in curves)
        k = np.arange(0, horizon + 1)
        out[state] = float(np.max(np.abs(curves[0].at(k) - curves[1].at(k))))
    return out


@dataclass
class Comparison:
    """Observed vs simulated (vs analytic).

    Attributes:
        observed, simulated: the share tables (ticks x states).
        tvd_simulated: TVD per tick, observed vs simulated; `tvd_analytic` vs the analytic
            shares (None without them).
        spell_ks: per state, the KS distance between observed and simulated spell lengths.
    """

    observed: pd.DataFrame
    simulated: pd.DataFrame
    tvd_simulated: pd.Series
    spell_ks: dict[str, float]
    analytic: pd.DataFrame | None = None
    tvd_analytic: pd.Series | None = None

    def summary(self) -> dict[str, float]:
        """Mean and max TVD (simulated, analytic) and the largest spell KS distance."""
        out = {
            "tvd_mean": float(self.tvd_simulated.mean()),
            "tvd_max": float(self.tvd_simulated.max()),
            "spell_ks_max": max(self.spell_ks.values(), default=float("nan")),
        }
        if self.tvd_analytic is not None:
            out["tvd_analytic_mean"] = float(self.tvd_analytic.mean())
            out["tvd_analytic_max"] = float(self.tvd_analytic.max())
        return out


def compare(
    observed: Observed,
    simulated: Observed,
    *,
    analytic: pd.DataFrame | np.ndarray | Mapping[str, Any] | None = None,
    initial: str = "keep",
) -> Comparison:
    """Compare an observed log with a simulated one (and analytic occupancy, if given).

    `analytic` is a ticks x states table of occupancies or shares (rows are normalised to
    shares), on the same tick grid.
    """
    obs_shares = occupancy_shares(observed)
    sim_shares = occupancy_shares(simulated)
    result = Comparison(
        obs_shares,
        sim_shares,
        tvd(obs_shares, sim_shares),
        spell_ks(observed, simulated, initial=initial),
    )
    if analytic is not None:
        frame = (
            analytic
            if isinstance(analytic, pd.DataFrame)
            else pd.DataFrame(
                dict(analytic) if isinstance(analytic, Mapping) else np.asarray(analytic),
                **({} if isinstance(analytic, Mapping) else {"columns": list(observed.states)}),
            )
        )
        values = frame.to_numpy(dtype=float)
        totals = values.sum(axis=1, keepdims=True)
        shares = pd.DataFrame(
            np.divide(values, totals, out=np.zeros_like(values), where=totals > 0),
            columns=frame.columns,
            index=obs_shares.index[: len(frame)],
        )
        result.analytic = shares
        result.tvd_analytic = tvd(obs_shares, shares)
    return result


# -- observed vs simulated vs analytic, in shares, on one tick grid ------------------------


@dataclass
class ShareReport:
    """Occupancy shares per state of a log, a run and the analytic line on one tick grid,
    and how far apart they are (what `dogesim report` prints and draws).

    Attributes:
        shares: ``observed``, ``simulated`` and ``analytic`` (those there are): ticks (or
            rows of `record_every` ticks) x states, each row summing to 1.
        reference: the table the others are measured against (``observed`` when there is
            one, else ``simulated``).
        tvd: per other table, the total variation distance to the reference per row.
        approximations: why the analytic line is not exact, one sentence each (empty: it
            is, up to sampling).
        semi_markov: the analytic line steps through the model's phases (dwell and delay
            laws, profiles on the run's clock), else it is the plain chain.
    """

    shares: dict[str, pd.DataFrame]
    reference: str
    tvd: dict[str, pd.Series]
    approximations: list[str]
    semi_markov: bool = False
    spell_ks: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, float]:
        """Per compared table, the mean and max TVD: ``tvd_simulated_mean``, ...max, ...;
        and ``spell_ks_max`` when spell lengths were compared."""
        out: dict[str, float] = {}
        for name, series in self.tvd.items():
            out[f"tvd_{name}_mean"] = float(series.mean())
            out[f"tvd_{name}_max"] = float(series.max())
        if self.spell_ks:
            out["spell_ks_max"] = max(self.spell_ks.values())
        return out

    def lines(self) -> list[str]:
        """The summary for people: one line per comparison, then the analytic line's notes."""
        rows = len(self.shares[self.reference])
        out = [
            f"TVD per tick, {name} vs {self.reference}: mean {series.mean():.4f}, "
            f"max {series.max():.4f} ({rows} rows)"
            for name, series in self.tvd.items()
        ]
        if self.spell_ks:
            worst = sorted(self.spell_ks.items(), key=lambda kv: -kv[1])
            each = ", ".join(f"{state} {ks:.3f}" for state, ks in worst[:6])
            more = f" and {len(worst) - 6} more" if len(worst) > 6 else ""
            out.append(
                f"spell-length KS per state, simulated vs observed: max {worst[0][1]:.3f} "
                f"({each}{more})"
            )
        if "analytic" in self.shares:
            kind = "semi-Markov, tick by tick" if self.semi_markov else "Markov chain"
            if self.approximations:
                out.append(f"analytic line ({kind}) is an approximation:")
                out.extend(f"  - {note}" for note in self.approximations)
            else:
                out.append(f"analytic line ({kind}): exact up to sampling, from the start mix")
        return out

    def figure(self, **options: Any) -> Any:
        """The figure of this report (`dogesim.report.plots.plot_shares`; needs matplotlib)."""
        from dogesim.report import plots

        return plots.plot_shares(self, **options)


def _as_shares(table: pd.DataFrame | np.ndarray, states: list[str]) -> np.ndarray:
    """Counts or shares per row as shares (rows of zeros stay zeros)."""
    frame = (
        table.reindex(columns=states, fill_value=0.0)
        if isinstance(table, pd.DataFrame)
        else pd.DataFrame(np.asarray(table), columns=states)
    )
    values = frame.to_numpy(dtype=float)
    totals = values.sum(axis=1, keepdims=True)
    return np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)


def _run_notes(result: RunResult | None) -> list[str]:
    """What a run did that no analytic line knows of."""
    notes = []
    if result is not None and result.arrivals:
        notes.append(
            f"{result.arrivals} subjects arrived during the run; the line follows the "
            "starting population only"
        )
    if result is not None and int(result.vetoes.sum()):
        notes.append(
            f"callbacks vetoed {int(result.vetoes.sum())} attempts; the line counts them as moves"
        )
    return notes


def share_report(
    *,
    observed: pd.DataFrame | Observed | None = None,
    result: RunResult | None = None,
    model: Model | None = None,
    start: np.ndarray | Sequence[float] | None = None,
    clock: tuple[int, int] | None = None,
    spell_distances: Mapping[str, float] | None = None,
    analytic_line: bool = True,
) -> ShareReport:
    """Observed vs simulated vs analytic occupancy shares, and their TVD per tick.

    Args:
        observed: subjects (or shares) per state after each tick's moves, one row per tick
            (e.g. `tables.observed_occupancy`), or an `Observed` log.
        result: a run over the same window; its rows (`record_every` ticks each) set the
            grid, and the observed rows are read at the same ticks.
        model: the model for the analytic line (default: the run's chain,
            `analytic.chain_of_result`; pass the model when it has dwell laws).
        start: subjects per state at the start (default: the run's `RunResult.started()`,
            else the observed population split by the model's initial mix).
        clock: (timestamp of tick 0, tick length in ms), so the analytic line weighs in
            calendar profiles (default: the run's; without a run or a clock profiles are
            ignored, and the report says so).
        spell_distances: per state, the KS distance between observed and simulated spell
            lengths (`log_spell_ks`), kept in the report and its lines.
        analytic_line: compute the analytic line.
    """
    if observed is None and result is None:
        raise DogesimError("share_report needs an observed log or a run result (or both)")
    obs = occupancy_shares(observed) if isinstance(observed, Observed) else observed
    chain = model if model is not None else (analytic.chain_of_result(result) if result else None)
    if chain is None and obs is not None:
        states = [str(c) for c in obs.columns]
    else:
        states = list(chain.states) if chain is not None else list(result.states)  # type: ignore[union-attr]
    if result is not None:
        ticks, every = result.ticks, result.record_every
        rows = result.row_ticks()
        index: pd.Index = tables.time_index(
            result.timestamp_start, result.tick_ms, ticks, every=every
        )
    else:
        assert obs is not None
        ticks, every = len(obs), 1
        rows = np.arange(ticks)
        index = obs.index
    shares: dict[str, pd.DataFrame] = {}
    if obs is not None:
        if len(obs) < ticks:
            raise DogesimError(
                f"share_report: the observed table has {len(obs)} ticks, the run {ticks}; "
                "observe the run's whole window"
            )
        picked = obs.iloc[rows] if result is not None else obs
        shares["observed"] = pd.DataFrame(_as_shares(picked, states), index=index, columns=states)
    if result is not None:
        simulated = pd.DataFrame(result.occupancy, columns=list(result.states))
        shares["simulated"] = pd.DataFrame(
            _as_shares(simulated, states), index=index, columns=states
        )
    notes: list[str] = []
    semi = False
    if analytic_line and chain is not None:
        begin = _start(start, result, chain, obs)
        if clock is None and result is not None:
            clock = (result.timestamp_start, result.tick_ms)
        expected = analytic.expected_counts(chain, ticks, begin, every=every, clock=clock)
        shares["analytic"] = pd.DataFrame(
            _as_shares(expected, list(chain.states)), index=index, columns=list(chain.states)
        ).reindex(columns=states, fill_value=0.0)
        semi = analytic.uses_semi_markov(chain, ticks, clock)
        notes = analytic.approximations(chain, semi_markov=semi, profiles=clock is not None)
        if chain.semi_markov and not semi and analytic.too_long(chain, ticks, clock):
            notes.insert(
                0,
                "the semi-Markov line is too long to step through here "
                f"(over {analytic.MAX_WORK:.0e} matrix entries x ticks): the plain chain is drawn",
            )
        notes += _run_notes(result)
    reference = "observed" if "observed" in shares else "simulated"
    distances = {
        name: tvd(shares[reference], table) for name, table in shares.items() if name != reference
    }
    return ShareReport(shares, reference, distances, notes, semi, dict(spell_distances or {}))


def log_spell_ks(
    observed_log: pd.DataFrame,
    simulated_log: pd.DataFrame,
    model: Model,
    *,
    tick: int | str,
    timestamp_start: int,
    ticks: int,
) -> dict[str, float]:
    """Per state, the KS distance between the spell lengths of two normalised event logs
    (`tables.read_event_log`, `memory_log`) on one tick grid, over the subjects with events
    in each (see `spell_ks`); `tick` in ms, or calendar months (``"1mo"``).

    Raises:
        DogesimError: a log is not a chain of moves per subject (e.g. it misses moves that
            feed no sink), so its spells cannot be read.
    """
    grid: dict[str, Any] = {
        "tick": tick,
        "model": model,
        "window_start": timestamp_start,
        "ticks": ticks,
    }
    return spell_ks(observe(observed_log, **grid), observe(simulated_log, **grid))


def _start(
    start: np.ndarray | Sequence[float] | None,
    result: RunResult | None,
    chain: Model,
    obs: pd.DataFrame | None,
) -> np.ndarray:
    """Subjects per state at the start of the analytic line."""
    if start is not None:
        return np.asarray(start, dtype=float)
    if result is not None:
        return result.started().astype(float)
    assert obs is not None
    population = float(obs.iloc[0].sum()) if len(obs) else 0.0
    return population * analytic.initial_distribution(chain)
