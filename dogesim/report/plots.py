"""Plots of runs, event logs and fits, as matplotlib `Figure` objects.

- `plot_occupancy(...)`: subjects per state over time: simulated (solid), analytic (dashed,
  with a binomial band) and observed from an event log (dotted), on one figure.
- `plot_shares(report)`: a `compare.ShareReport`: observed, simulated and analytic shares
  per state on one figure, the TVD per tick below them, its mean and max and the analytic
  line's approximations written on the figure.
- `plot_event_rates(result)`: events per tick per trigger (rolling mean).
- `plot_transition_heatmap(result)`: event counts from-state x to-state.
- `plot_fit(fit)`: fitted per-tick probabilities with their intervals vs the configured ones.
- `model_of_result(result)`: the bare chain of a run (no callbacks, no sinks).

The figures are made without pyplot (no global state, no GUI backend): save them with
``fig.savefig("x.png")``; Jupyter shows them inline when they are the cell's value.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from dogesim.errors import DogesimError
from dogesim.model import Model
from dogesim.report import analytic, tables
from dogesim.result import RunResult

if TYPE_CHECKING:
    from dogesim.report.compare import ShareReport
    from dogesim.report.fit import FitResult

__all__ = [
    "MAX_SHARE_PANELS",
    "model_of_result",
    "plot_event_rates",
    "plot_fit",
    "plot_occupancy",
    "plot_shares",
    "plot_transition_heatmap",
]


_DISPLAY_READY = False


def _enable_inline_display() -> None:
    """Inside an IPython kernel, load the configured backend once.

    Loading the inline backend registers its display hook for `Figure` objects, so a figure
    returned as a cell's value shows as an image without ``%matplotlib inline``. Outside
    IPython nothing is loaded (no pyplot, no GUI backend).
    """
    global _DISPLAY_READY
    if _DISPLAY_READY:
        return
    _DISPLAY_READY = True
    ipython = sys.modules.get("IPython")
    if ipython is None or getattr(ipython, "get_ipython", lambda: None)() is None:
        return
    try:
        import matplotlib
        import matplotlib.pyplot as plt

        plt.switch_backend(matplotlib.get_backend())
    except Exception:  # display is a convenience; the figure works without it
        pass


def _figure(figsize: tuple[float, float]) -> Figure:
    """A new figure, not managed by pyplot (no global state; see `_enable_inline_display`)."""
    _enable_inline_display()
    return Figure(figsize=figsize, layout="constrained")


def model_of_result(result: RunResult) -> Model:
    """The chain a run walked (`dogesim.report.analytic.chain_of_result`)."""
    return analytic.chain_of_result(result)


def _colours(states: list[str]) -> dict[str, Any]:
    palette = [f"C{k % 10}" for k in range(len(states))]
    return dict(zip(states, palette, strict=True))


def plot_occupancy(
    result: RunResult | None = None,
    *,
    model: Model | None = None,
    observed: pd.DataFrame | None = None,
    analytic_line: bool = True,
    band: float | None = 3.0,
    subjects: int | None = None,
    ticks: int | None = None,
    tick_ms: int | None = None,
    timestamp_start: int | None = None,
    states: list[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Subjects per state over time: simulated, analytic and observed on one figure, one
    panel per state (so small states are not flattened by large ones).

    Args:
        result: a run; gives the simulated lines and, by default, the chain and the window.
        model: the chain for the analytic lines (default: the run's; callbacks' vetoes are
            not in it, see `dogesim.report.analytic`).
        observed: occupancy from an event log (`tables.observed_occupancy`).
        analytic_line: draw the analytic expectation.
        band: draw ``+/- band`` binomial standard deviations around it (None: no band).
        subjects, ticks, tick_ms, timestamp_start: the window when there is no `result`.
        states: the states to draw (default: all).
        title: the figure title.
        figsize: the figure size in inches (default: from the number of states).
    """
    if result is None and model is None:
        raise DogesimError("plot_occupancy needs a run result or a model")
    chain = model if model is not None else model_of_result(result)  # type: ignore[arg-type]
    n = subjects if subjects is not None else (result.subjects if result else None)
    n_ticks = ticks if ticks is not None else (result.ticks if result else None)
    step = tick_ms if tick_ms is not None else (result.tick_ms if result else None)
    start = (
        timestamp_start
        if timestamp_start is not None
        else (result.timestamp_start if result else 0)
    )
    if observed is not None:
        n_ticks = n_ticks if n_ticks is not None else len(observed)
    if n is None or n_ticks is None or step is None:
        raise DogesimError("plot_occupancy without a result needs subjects, ticks and tick_ms")
    names = list(states) if states is not None else list(chain.states)
    colours = _colours(list(chain.states))
    columns = 1 if len(names) <= 3 else 2
    rows = -(-len(names) // columns)
    size = figsize if figsize is not None else (10.0 if columns == 1 else 12.0, 2.4 * rows + 0.8)
    fig = _figure(size)
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    # A long run records rows of several ticks: the analytic lines follow its rows.
    every = result.record_every if result is not None and ticks is None else 1
    index = tables.time_index(start, step, n_ticks, every=every)
    frame = tables.occupancy_frame(result) if result is not None else None
    # The run's own start (a mix draws it) unless a window without the run is asked for.
    if result is not None and subjects is None:
        started = result.started()
    else:
        started = n * analytic.initial_distribution(chain)
    clock = (start, step)  # so calendar profiles are weighed in
    expected = (
        analytic.expected_counts(chain, n_ticks, started, every=every, clock=clock)
        if analytic_line
        else None
    )
    bounds = (
        analytic.expected_band(chain, n_ticks, started, band, every=every, clock=clock)
        if analytic_line and band
        else None
    )
    for ax, state in zip(axes, names, strict=False):
        colour = colours[state]
        k = chain.index(state)
        if frame is not None:
            ax.plot(frame.index, frame[state], color=colour, lw=1.2, label="simulated")
        if expected is not None:
            ax.plot(index, expected[:, k], color="black", lw=1.0, ls="--", label="analytic")
        if bounds is not None:
            ax.fill_between(
                index,
                np.maximum(bounds[0][:, k], 0.0),
                bounds[1][:, k],
                color="grey",
                alpha=0.25,
                lw=0,
                label=f"analytic +/- {band:g} sd",
            )
        if observed is not None and state in observed.columns:
            ax.plot(
                observed.index,
                observed[state],
                color="C3" if frame is not None else colour,
                lw=1.2,
                ls=":" if frame is not None else "-",
                label="observed",
            )
        ax.set_title(state, loc="left", fontsize="medium")
        ax.set_ylabel("subjects")
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].legend(loc="best", fontsize="small")
    for ax in axes[-columns:]:
        ax.set_xlabel("time (UTC)")
    fig.suptitle(title or f"Occupancy per state: {n} subjects, {n_ticks} ticks")
    fig.autofmt_xdate()
    return fig


#: The most states `plot_shares` draws unless told which (the largest by mean share).
MAX_SHARE_PANELS = 11

#: How each table of a share report is drawn: colour (None: the state's), style, width.
_SHARE_STYLE: dict[str, tuple[str | None, str, float]] = {
    "observed": ("black", "-", 1.4),
    "simulated": (None, "-", 1.2),
    "analytic": ("black", "--", 1.0),
}


def plot_shares(
    report: ShareReport,
    *,
    states: list[str] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Observed, simulated and analytic shares per state on one figure (one panel per
    state), the TVD per tick against the reference in the last panel, and the report's
    summary (mean and max TVD, the analytic line's approximations) written under it.

    Args:
        report: what `dogesim.report.compare.share_report` returned.
        states: the states to draw (default: all, or the `MAX_SHARE_PANELS` largest by mean
            share in the reference, in model order, saying how many are left out).
        title: the figure title.
        figsize: the figure size in inches (default: from the number of states).
    """
    reference = report.shares[report.reference]
    notes = report.lines()
    if states is not None:
        names = list(states)
    else:
        # the largest states (by mean share) when there are many: one panel each is legible
        ranked = reference.mean().sort_values(ascending=False, kind="stable")
        names = [str(c) for c in ranked.index[:MAX_SHARE_PANELS]]
        names.sort(key=[str(c) for c in reference.columns].index)
        if len(ranked) > len(names):
            notes.append(
                f"{len(ranked) - len(names)} smaller states not drawn (give states= to choose)"
            )
    colours = _colours([str(c) for c in reference.columns])
    panels = len(names) + 1
    columns = 1 if panels <= 3 else 2
    rows = -(-panels // columns)
    size = figsize if figsize is not None else (10.0 if columns == 1 else 12.0, 2.3 * rows + 1.2)
    fig = _figure(size)
    axes = fig.subplots(rows, columns, sharex=True, squeeze=False).ravel()
    for ax, state in zip(axes, names, strict=False):
        for name, table in report.shares.items():
            colour, style, width = _SHARE_STYLE[name]
            ax.plot(
                table.index,
                table[state],
                color=colour or colours.get(state, "C0"),
                ls=style,
                lw=width,
                label=name,
            )
        ax.set_title(state, loc="left", fontsize="medium")
        ax.set_ylabel("share")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    tvd_axis = axes[len(names)]
    for name, series in report.tvd.items():
        tvd_axis.plot(
            series.index, series.to_numpy(), lw=1.0, label=f"{name} vs {report.reference}"
        )
    tvd_axis.set_title("total variation distance per tick", loc="left", fontsize="medium")
    tvd_axis.set_ylabel("TVD")
    tvd_axis.grid(alpha=0.3)
    if report.tvd:
        tvd_axis.legend(loc="best", fontsize="small")
    for ax in axes[panels:]:
        ax.set_visible(False)
    axes[0].legend(loc="best", fontsize="small")
    fig.suptitle(title or f"Occupancy shares: {', '.join(report.shares)}")
    # under the panels, inside the constrained layout (fig.text would overlap them)
    fig.supxlabel("\n".join(notes), fontsize="small", ha="left", x=0.01)
    return fig


def plot_event_rates(
    result: RunResult,
    *,
    window: int | None = None,
    triggers: list[str] | None = None,
    figsize: tuple[float, float] = (10.0, 4.5),
) -> Figure:
    """Events per tick (per row of `record_every` ticks in a long run) per trigger, as a
    rolling mean over `window` rows (about 1% of the run by default)."""
    frame = tables.events_frame(result)
    if triggers is not None:
        frame = frame[triggers]
    width = window if window is not None else max(1, len(frame) // 100)
    smooth = frame.rolling(width, min_periods=1).mean()
    fig = _figure(figsize)
    ax = fig.add_subplot()
    for trigger in smooth.columns:
        ax.plot(smooth.index, smooth[trigger], lw=1.2, label=str(trigger))
    ax.set_xlabel("time (UTC)")
    per = "tick" if result.record_every == 1 else f"{result.record_every} ticks"
    ax.set_ylabel(f"events per {per} (mean of {width})")
    ax.set_title(f"Event rate per trigger ({result.events} events)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def plot_transition_heatmap(
    result: RunResult, *, figsize: tuple[float, float] = (6.5, 5.0)
) -> Figure:
    """Event counts from each state (rows) to each state (columns), annotated."""
    states = list(result.states)
    index = {s: k for k, s in enumerate(states)}
    counts = np.zeros((len(states), len(states)), dtype=np.int64)
    for transition, count in zip(result.transitions, result.events_per_transition, strict=True):
        counts[index[transition.from_state], index[transition.to_state]] += int(count)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    shown = np.log10(counts + 1.0)
    image = ax.imshow(shown, cmap="viridis")
    ax.set_xticks(range(len(states)), states, rotation=45, ha="right")
    ax.set_yticks(range(len(states)), states)
    ax.set_xlabel("to state")
    ax.set_ylabel("from state")
    top = shown.max() if shown.size else 0.0
    for i in range(len(states)):
        for j in range(len(states)):
            ax.text(
                j,
                i,
                f"{counts[i, j]:,}",
                ha="center",
                va="center",
                fontsize="small",
                color="white" if shown[i, j] < 0.6 * top else "black",
            )
    fig.colorbar(image, ax=ax, label="log10(events + 1)")
    ax.set_title("Transitions (event counts)")
    return fig


def plot_fit(fit: FitResult, *, figsize: tuple[float, float] = (9.0, 4.5)) -> Figure:
    """Fitted probabilities (% per tick, log scale) with their intervals, and the configured
    ones where known."""
    table = fit.table()
    labels = [f"{row.from_state}:{row.trigger}" for row in table.itertuples()]
    y = np.arange(len(table))
    fig = _figure(figsize)
    ax = fig.add_subplot()
    est = table["fitted_pct"].to_numpy()
    low = table["ci_low_pct"].to_numpy()
    high = table["ci_high_pct"].to_numpy()
    floor = np.nanmin(np.where(high > 0, high, np.nan)) / 100 if np.any(high > 0) else 1e-6
    shown = np.where(est > 0, est, floor)
    ax.errorbar(
        shown,
        y,
        xerr=[shown - np.maximum(low, floor), high - shown],
        fmt="o",
        color="C0",
        capsize=3,
        label=f"fitted ({fit.confidence:.0%} Wilson interval)",
    )
    if "configured_pct" in table and table["configured_pct"].notna().any():
        ax.plot(table["configured_pct"], y, "x", color="C3", ms=8, label="configured")
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("probability per tick (%)")
    ax.set_title(f"Fitted transition probabilities (log-likelihood {fit.log_likelihood:,.1f})")
    ax.grid(alpha=0.3, which="both", axis="x")
    fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    return fig
