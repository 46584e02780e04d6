"""The main job's first run: the banking model at a size where its picture means something.

`scripts/run` calls this after setting up ``.venv``. It simulates ``models/banking.yaml`` (the
doge-datagen README's model; the file itself keeps the README's 10 users) with 10,000 users
for one day of one-minute ticks, writes every event to ``out/banking.jsonl`` and draws
``out/banking-occupancy.png``: the share of users in each state, simulated against the
analytic expectation of the Markov chain with its +/- 3 sd band. Then it prints a one-screen
summary: events, final shares against the analytic ones, wall time and the ledger.

- `main`: parse the arguments, run, plot, print.
- `share_figure`: the occupancy figure in shares.
- `summary`: the one-screen summary.

Run: ``python scripts/first_run.py [--subjects N] [--ticks T] [--seed S] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogesim.errors import DogesimError  # noqa: E402
from dogesim.modelfile import load_model_file  # noqa: E402
from dogesim.report import analytic  # noqa: E402
from dogesim.result import RunResult  # noqa: E402

MODEL = ROOT / "models" / "banking.yaml"
#: Standard deviations of the band around the analytic shares.
BAND = 3.0


def expected_shares(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """Per recorded row and state: the analytic share and its binomial standard deviation."""
    from dogesim.report.plots import model_of_result

    chain = model_of_result(result)
    probs = analytic.occupancy_probabilities(chain, result.ticks, every=result.record_every)
    return probs, np.sqrt(probs * (1.0 - probs) / result.subjects)


def _when(result: RunResult) -> list[dt.datetime]:
    """The UTC time of every recorded row."""
    return [
        dt.datetime.fromtimestamp(int(ms) / 1000, tz=dt.timezone.utc) for ms in result.timestamps()
    ]


def share_figure(result: RunResult, model_name: str) -> Any:
    """One panel per state: the simulated share of users (colour), the analytic share
    (dashed) and its +/- `BAND` sd band (grey), in percent, each panel on its own scale, with
    the final shares and how often the run stayed inside the band written on it."""
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    shares = result.occupancy / result.subjects
    expected, sd = expected_shares(result)
    when = _when(result)
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    axes = fig.subplots(len(result.states), 1, sharex=True, squeeze=False).ravel()
    for k, (ax, state) in enumerate(zip(axes, result.states, strict=True)):
        low = np.clip(expected[:, k] - BAND * sd[:, k], 0, 1)
        high = np.clip(expected[:, k] + BAND * sd[:, k], 0, 1)
        inside = float(np.mean((shares[:, k] >= low) & (shares[:, k] <= high)))
        ax.fill_between(when, 100 * low, 100 * high, color="grey", alpha=0.3, lw=0,
                        label=f"analytic ± {BAND:g} sd")  # fmt: skip
        ax.plot(when, 100 * shares[:, k], color=f"C{k}", lw=1.0, label="simulated")
        ax.plot(when, 100 * expected[:, k], color="black", lw=1.2, ls="--", label="analytic")
        end, analytic_end = 100 * shares[-1, k], 100 * expected[-1, k]
        ax.set_title(
            f"{state}: {end:.2f}% at the end (analytic {analytic_end:.2f}%); "
            f"inside the band {100 * inside:.1f}% of the time",
            loc="left",
            fontsize="medium",
        )
        ax.set_ylabel("% of users")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize="small", ncols=3)
    axes[-1].xaxis.set_major_formatter(DateFormatter("%H:%M"))
    axes[-1].set_xlabel(f"time of day (UTC), {when[0]:%Y-%m-%d}")
    hours = result.ticks * result.tick_ms / 3_600_000
    fig.suptitle(
        f"{model_name}: share of {result.subjects:,} users in each state over {hours:g} hours "
        f"— simulated vs analytic Markov chain (seed {result.seed})"
    )
    return fig


def summary(result: RunResult, wall: float, events_path: Path, plot: Path | None) -> str:
    """Events, final shares against the analytic ones, wall time and the ledgers."""
    expected, sd = expected_shares(result)
    final = result.occupancy[-1] / result.subjects
    days = result.ticks * result.tick_ms / 86_400_000
    lines = [
        f"dogesim: banking model, {result.subjects:,} users x {result.ticks:,} ticks of "
        f"{result.tick_ms / 60_000:g} min ({days:g} day), seed {result.seed}",
        f"  {result.events:,} events in {wall:.2f} s wall ({result.events / wall:,.0f} events/s), "
        f"simulation and writing included -> {events_path}",
        f"  {'state':<12} {'final share':>12} {'analytic':>10} {'± 3 sd':>8} {'users':>8}",
    ]
    for k, state in enumerate(result.states):
        lines.append(
            f"  {state:<12} {100 * final[k]:>11.2f}% {100 * expected[-1, k]:>9.2f}% "
            f"{100 * BAND * sd[-1, k]:>7.2f}% {int(result.occupancy[-1, k]):>8,}"
        )
    per_trigger = ", ".join(f"{t} {n:,}" for t, n in result.events_by_trigger().items())
    lines.append(f"  events per trigger: {per_trigger}")
    lines.extend(f"  ledger {ledger.summary()}" for ledger in result.ledgers)
    if plot is not None:
        lines.append(f"  occupancy plot (shares, simulated vs analytic) -> {plot}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the banking model into out/, plot it and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000, help="users (default 10,000)")
    parser.add_argument("--ticks", type=int, default=1440, help="one-minute ticks (default 1440)")
    parser.add_argument("--seed", type=int, default=42, help="seed (default 42)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (DogesimError, OSError) as exc:
        # One line, as `dogesim run` says it (a bad --subjects, an --out that is a file).
        print(f"scripts/run: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    environ = dict(os.environ, DOGESIM_OUT_DIR=str(args.out))
    spec = load_model_file(
        MODEL, subjects=args.subjects, ticks=args.ticks, seed=args.seed, environ=environ
    )
    started = time.perf_counter()
    result = spec.simulation().run()
    wall = time.perf_counter() - started
    plot = None
    if not args.no_plot:
        plot = args.out / "banking-occupancy.png"
        share_figure(result, "Banking model").savefig(plot, dpi=110)
    print(summary(result, wall, args.out / "banking.jsonl", plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
