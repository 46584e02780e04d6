"""The commands that read an event log: ``dogesim report`` and ``dogesim fit``.

- `_cmd_report(args, out, err)`: observed occupancy of a log against the model's analytic
  expectation, as a plot.
- `_cmd_fit(args, out, err)`: per-tick probabilities fitted from a log, written as a model
  file (`_fit_window` gathers its defaults from the flags and the model).
- `_fields(args)`: the ``--*-field`` names given, for `dogesim.report.tables`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TextIO

from dogesim.cli.arguments import _writable
from dogesim.cli.outputs import _plot_module
from dogesim.cli.status import EXIT_OK, _UsageError
from dogesim.engine import effective_model
from dogesim.errors import DogesimError


def _fields(args: argparse.Namespace) -> dict[str, str]:
    """The event log field names given on the command line (the rest are found by name)."""
    names = {
        "subject": args.subject_field,
        "timestamp": args.timestamp_field,
        "trigger": args.trigger_field,
        "from_state": args.from_field,
        "to_state": args.to_field,
    }
    return {k: v for k, v in names.items() if v}


def _cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim report EVENTS --model MODEL.yaml -o PNG`."""
    from dogesim.modelfile import load_model_file

    _writable("--output", args.output, plot=True)
    plots = _plot_module()
    from dogesim.report import tables

    spec = load_model_file(args.model, subjects=args.subjects, ticks=args.ticks)
    if spec.arrivals is not None:
        raise _UsageError(
            f"dogesim report: {args.model} has arrivals; occupancy observed from an event log "
            "needs a fixed population (subjects that have not arrived yet would count as "
            "sitting in the initial state). Plot the run's own result instead: dogesim run "
            f"{args.model} --report FILE.png"
        )
    # With churn the run (and its log) has the final state 'churned' and 'churn' moves.
    model = effective_model(spec.model, spec.tick_ms, spec.churn, ())
    events = tables.read_event_log(args.events, model=model, **_fields(args))
    window = {
        "subjects": spec.subjects.count,
        "ticks": spec.ticks,
        "tick_ms": spec.tick_ms,
        "timestamp_start": spec.timestamp_start,
    }
    observed = tables.observed_occupancy(events, model, calendar=spec.calendar, **window)
    figure = plots.plot_occupancy(
        model=model,
        observed=observed,
        title=f"{spec.name}: observed ({os.path.basename(args.events)}) vs analytic",
        **window,
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    counts = events.groupby("trigger", sort=False).size() if len(events) else {}
    print(
        f"{args.events}: {len(events)} events of {events['subject'].nunique()} subjects", file=out
    )
    for trigger, count in dict(counts).items():
        print(f"  {trigger}: {count}", file=out)
    print(f"occupancy plot -> {args.output}", file=out)
    return EXIT_OK


def _fit_window(args: argparse.Namespace, spec: Any) -> dict[str, Any]:
    """States, tick, window length and population of the fit: the flags, else the model's."""
    states = [s.strip() for s in args.states.split(",") if s.strip()] if args.states else None
    if states is None and spec is None:
        raise _UsageError("dogesim fit: give --states A,B,C or --model MODEL.yaml")
    tick_ms = args.tick if args.tick is not None else (spec.tick_ms if spec else None)
    if args.tick is None and spec is not None and spec.calendar:
        tick_ms = f"{spec.calendar}mo"
    if tick_ms is None:
        raise _UsageError("dogesim fit: give --tick (e.g. 1m) or --model MODEL.yaml")
    ticks = args.window_ticks
    if ticks is None and args.end is None and spec is not None and args.start is None:
        ticks = spec.ticks
    subjects = (
        args.subjects if args.subjects is not None else (spec.subjects.count if spec else None)
    )
    return {"states": states, "tick_ms": tick_ms, "ticks": ticks, "subjects": subjects}


def _cmd_fit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim fit EVENTS -o MODEL.yaml`: fit, write the model file, print the table."""
    from dogesim.modelfile import load_model_file

    try:
        from dogesim.report.fit import fit_event_log
    except ImportError as exc:
        raise DogesimError(f"fit needs pandas ({exc}); pip install 'dogesim[plot]'") from None
    _writable("--output", args.output)
    if args.plot:
        _writable("--plot", args.plot, plot=True)
    spec = load_model_file(args.model) if args.model else None
    result = fit_event_log(
        args.events,
        initial_state=args.initial,
        window_start=args.start,
        window_end=args.end,
        model=spec,
        confidence=args.confidence,
        fields=_fields(args),
        kernel=args.kernel,
        by="month" if args.by_month else ("age" if args.by_age else None),
        age_bins=args.by_age,
        **_fit_window(args, spec),
    )
    name = Path(args.output).stem
    result.write_model_file(args.output, name=name, template=spec)
    _print_fit(result, args, out)
    return EXIT_OK


def _print_fit(result: Any, args: argparse.Namespace, out: TextIO) -> None:
    """The fitted table and totals, and the plot of --plot."""
    import pandas as pd

    table = result.table()
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"), file=out)
    print(
        f"{result.events} events, {result.subjects} subjects, {result.ticks} ticks; "
        f"log-likelihood {result.log_likelihood:.3f}",
        file=out,
    )
    if result.kernel is not None:
        print(f"dwell kernels for {len(result.kernel.dwell_laws())} states", file=out)
    if result.tables is not None:
        tables = result.tables
        print(
            f"chances by {tables.factor}: LR {tables.lr_statistic:.1f} on {tables.df} df "
            f"against constant chances, p = {tables.p_value:.3g}; per-level intervals in "
            "the model file's descriptions",
            file=out,
        )
    print(f"fitted model -> {args.output}", file=out)
    if args.plot:
        figure = result.plot()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.plot, dpi=110)
        print(f"fit plot -> {args.plot}", file=out)
