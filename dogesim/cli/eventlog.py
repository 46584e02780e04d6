"""The commands that read an event log: ``dogesim report`` and ``dogesim fit``.

- `_cmd_report(args, out, err)`: the occupancy shares of a log against a run of the model
  and its analytic expectation (`dogesim.report.compare.share_report`): a plot, and the TVD
  per tick printed.
- `_cmd_fit(args, out, err)`: per-tick probabilities fitted from a log, written as a model
  file (`_fit_window` gathers its defaults from the flags and the model); ``--roster`` and
  ``--weight`` give the population and its survey weights (Kish's effective sample size
  printed), ``--by COLUMN`` one fit per group written as one mixture file (an entity type
  per group, `GroupFit.write_model_file`).
- `_observe_log(args, options)`: the log on its tick grid with its population.
- `_fields(args)`: the ``--*-field`` names given, for `dogesim.report.tables`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
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
    import pandas as pd

    from dogesim.report import compare, tables
    from dogesim.sinks.memory import MemorySink

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
    window = {
        "subjects": spec.subjects.count,
        "ticks": spec.ticks,
        "tick_ms": spec.tick_ms,
        "timestamp_start": spec.timestamp_start,
    }
    with _naming_inputs(args):
        events = tables.read_event_log(args.events, model=model, **_fields(args))
        observed = tables.observed_occupancy(events, model, calendar=spec.calendar, **window)
    tick: int | str = f"{spec.calendar}mo" if spec.calendar else spec.tick_ms
    # a run of the model over the same window (its own seed, into memory), unless not wanted
    result, spells = None, None
    if not args.no_simulation:
        simulated = MemorySink(compare.move_record)
        result = spec.run(sinks=[simulated])
        try:
            spells = compare.log_spell_ks(
                events,
                pd.DataFrame(simulated.events),
                model,
                tick=tick,
                timestamp_start=spec.timestamp_start,
                ticks=spec.ticks,
            )
        except DogesimError as exc:
            print(f"spell lengths not compared: {exc}", file=out)
    report = compare.share_report(
        observed=observed,
        result=result,
        model=model,
        start=tables.observed_start(events, model, spec.subjects.count, spec.ticks),
        clock=(spec.timestamp_start, spec.tick_ms),
        spell_distances=spells,
    )
    figure = plots.plot_shares(
        report, title=f"{spec.name}: {os.path.basename(args.events)} vs {', '.join(report.tvd)}"
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    counts = events.groupby("trigger", sort=False).size() if len(events) else {}
    print(
        f"{args.events}: {len(events)} events of {events['subject'].nunique()} subjects", file=out
    )
    for trigger, count in dict(counts).items():
        print(f"  {trigger}: {count}", file=out)
    for line in report.lines():
        print(line, file=out)
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
    """`dogesim fit EVENTS -o MODEL.yaml`: fit, write the model file, print the table
    (with ``--by``: one fit per group, written as one mixture file)."""
    from dogesim.modelfile import load_model_file

    try:
        from dogesim.report import fit
    except ImportError as exc:
        raise DogesimError(f"fit needs pandas ({exc}); pip install 'dogesim[plot]'") from None
    _check_population_flags(args)
    _writable("--output", args.output)
    for name, given in (("--model", args.model), ("EVENTS", args.events)):
        same = given and os.path.exists(given) and os.path.exists(args.output)
        if same and os.path.samefile(given, args.output):
            # The fitted file keeps the model's states and chances, not its sinks and
            # callbacks: writing over the input would lose them (and the log, its data).
            raise _UsageError(
                f"dogesim fit: -o {args.output} is the {name} file it reads; write the fitted "
                "model to another file"
            )
    if args.plot:
        _writable("--plot", args.plot, plot=True)
    spec = load_model_file(args.model) if args.model else None
    window = _fit_window(args, spec)
    if args.roster is not None:
        window["subjects"] = None  # the roster is the population
    options = {
        "initial_state": args.initial,
        "window_start": args.start,
        "window_end": args.end,
        "model": spec,
        "confidence": args.confidence,
        "fields": _fields(args),
        "roster": args.roster,
        "weight": args.weight,
        **window,
    }
    varying = "month" if args.by_month else ("age" if args.by_age else None)
    with _naming_inputs(args):
        if args.by is not None:
            laws = {"kernel": args.kernel, "factor": varying, "age_bins": args.by_age}
            groups = fit.fit_by(args.events, by=args.by, **laws, **options)
        else:
            obs = _observe_log(args, options)
            result = fit.with_laws(
                fit.fit_observed(
                    obs,
                    model=spec,
                    confidence=args.confidence,
                    initial_state=options["initial_state"],
                    tick=window["tick_ms"],
                ),
                obs,
                kernel=args.kernel,
                by=varying,
                age_bins=args.by_age,
            )
    name = Path(args.output).stem
    if args.by is not None:
        groups.write_model_file(args.output, name=name, template=spec)
        _print_groups(groups, args, out)
        return EXIT_OK
    result.write_model_file(args.output, name=name, template=spec)
    _print_fit(result, args, out)
    if args.weight is not None:
        _print_kish(obs.roster["weight"].to_numpy(dtype=float), args.weight, out)
    return EXIT_OK


def _check_population_flags(args: argparse.Namespace) -> None:
    """--roster replaces --subjects; --by writes no plot."""
    if args.roster is not None and args.subjects is not None:
        raise _UsageError(
            f"dogesim fit: --roster {args.roster} lists the whole population; leave out "
            f"--subjects {args.subjects}"
        )
    if args.by is None:
        return
    if args.plot:
        raise _UsageError(
            f"dogesim fit: --by {args.by} fits one model per group; --plot draws one fit "
            "(leave it out, or fit one group's log on its own to plot it)"
        )


def _observe_log(args: argparse.Namespace, options: dict[str, Any]) -> Any:
    """The log on its tick grid with its population (`dogesim.report.observed.observe`),
    as `fit_event_log` builds it: the model a run walks (with churn) and its start."""
    from dogesim.report.observed import observe

    spec = options["model"]
    model = effective_model(spec.model, spec.tick_ms, spec.churn, ()) if spec else None
    start = options["window_start"]
    if options["initial_state"] is None and model is not None:
        options["initial_state"] = model.initial_state
    return observe(
        args.events,
        tick=options["tick_ms"],
        states=options["states"],
        model=model,
        initial_state=options["initial_state"],
        window_start=start if start is not None or spec is None else spec.timestamp_start,
        window_end=options["window_end"],
        ticks=options["ticks"],
        roster=options["roster"],
        weight=options["weight"],
        subjects=options["subjects"],
        fields=options["fields"],
    )


@contextlib.contextmanager
def _naming_inputs(args: argparse.Namespace) -> Iterator[None]:
    """Put the file's name in front of an error about the roster or the event log."""
    try:
        yield
    except DogesimError as exc:
        text = str(exc)
        roster = getattr(args, "roster", None)  # dogesim report has none
        if roster is not None and text.startswith(("roster", "no column")):
            raise DogesimError(f"{roster}: {text}") from None
        if text.startswith("event log"):
            raise DogesimError(f"{args.events}: {text}") from None
        raise


def _print_kish(weights: Any, column: str, out: TextIO) -> None:
    """Kish's effective sample size of the population's weights: ``(sum w)^2 / sum w^2``."""
    from dogesim.report.observed import kish_deff

    deff = kish_deff(weights)
    print(
        f"weights from {column!r}: Kish effective sample size {len(weights) / deff:.1f} of "
        f"{len(weights)} subjects (design effect {deff:.3g})",
        file=out,
    )


def _print_groups(groups: Any, args: argparse.Namespace, out: TextIO) -> None:
    """The groups' fitted table, each group's share and size, and where the file went."""
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(groups.table().to_string(index=False, float_format=lambda v: f"{v:.6g}"), file=out)
    counts, names = groups.counts(), groups.entity_names()
    print(f"{len(groups.results)} groups by {args.by!r}:", file=out)
    for group, share in groups.shares.items():
        fit = groups.results[group]
        kish = f", Kish effective sample size {groups.effective[group]:.1f}" if args.weight else ""
        where = (
            f"entity {names[group]!r} ({counts[group]} subjects"
            if counts[group]
            else "left out (under half a subject"
        )
        print(
            f"  {group}: {share:.1%} of {groups.subjects} subjects -> {where}; {fit.events} "
            f"events, {fit.subjects} subjects fitted{kish})",
            file=out,
        )
    written = sum(1 for count in counts.values() if count)
    print(f"mixture model ({written} entity types) -> {args.output}", file=out)


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
