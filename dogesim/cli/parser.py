"""The argument parser of the ``dogesim`` command, one function per sub-command.

- `build_parser()`: the whole parser; each sub-command's arguments are declared by its own
  `_add_<command>` function, and the run's option groups by `_add_live_options`,
  `_add_stop_options` and `_add_scale_options`.
- `_add_population(parser, ...)`: ``--subjects N`` and ``--ticks T``, shared by ``run`` and
  ``report``; `_add_field_options(parser)`: the event log's field names, shared by
  ``report`` and ``fit``.
- `_Parser`: an `ArgumentParser` whose errors are one line (`_UsageError`).

A new flag goes next to its siblings in the function of its command or group.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from dogesim.cli.arguments import (
    _age_bins,
    _duration,
    _non_negative,
    _path,
    _positive,
    _record_every,
    _speed,
    _subject_count,
    _tick,
    _tick_count,
    _timestamp,
)
from dogesim.cli.outputs import _PLAIN_SINKS
from dogesim.cli.status import _UsageError
from dogesim.modelfile.source import MAX_SUBJECTS, MAX_TICKS

#: What `add_subparsers` returns (argparse keeps its class private).
_Commands = Any

#: A parser, an argument group or a mutually exclusive group: what options are added to.
_Group = argparse.ArgumentParser | argparse._ArgumentGroup


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dogesim`` command."""
    from dogesim import __version__

    parser = _Parser(
        prog="dogesim",
        description="Simulate subjects walking a probabilistic state machine; stream their "
        "events to files, Kafka or SQL; report and calibrate.",
    )
    parser.add_argument("--version", action="version", version=f"dogesim {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    _add_run(commands)
    _add_models(commands)
    _add_init(commands)
    _add_validate(commands)
    _add_graph(commands)
    _add_report(commands)
    _add_fit(commands)
    return parser


def _add_population(parser: argparse.ArgumentParser, *, subjects: str, ticks: str) -> None:
    """``--subjects N`` and ``--ticks T``, bounded by `MAX_SUBJECTS` and `MAX_TICKS`."""
    parser.add_argument("--subjects", type=_subject_count, metavar="N", help=subjects)
    parser.add_argument("--ticks", type=_tick_count, metavar="T", help=ticks)


def _add_field_options(parser: argparse.ArgumentParser) -> None:
    """The names of an event log's fields (``report`` and ``fit``)."""
    group = parser.add_argument_group(
        "event log fields",
        "found by name when omitted (e.g. subject.id, user.user_id; timestamp; trigger or "
        "event; from_state, to_state); nested JSON keys are joined with dots",
    )
    group.add_argument("--subject-field", metavar="FIELD", help="the subject id field")
    group.add_argument("--timestamp-field", metavar="FIELD", help="epoch ms or ISO-8601 time")
    group.add_argument("--trigger-field", metavar="FIELD", help="the trigger (event name)")
    group.add_argument("--from-field", metavar="FIELD", help="the state an event leaves")
    group.add_argument("--to-field", metavar="FIELD", help="the state an event enters")


def _value(group: _Group, *flags: str, kind: Any, metavar: str, help: str) -> None:
    """An option that takes a value of `kind` (an argparse type)."""
    group.add_argument(*flags, type=kind, metavar=metavar, help=help)


def _switch(group: _Group, *flags: str, help: str) -> None:
    """An option without a value: true when given."""
    group.add_argument(*flags, action="store_true", help=help)


def _add_run(commands: _Commands) -> None:
    """``dogesim run MODEL.yaml``: overrides, outputs, then the option groups."""
    run = commands.add_parser("run", help="run a model file", description="Run a model file.")
    run.add_argument(
        "model",
        metavar="MODEL.yaml",
        help="the model file, or the name of a shipped model (see `dogesim models`)",
    )
    _add_population(
        run,
        subjects=f"override subjects.count (at most {MAX_SUBJECTS:,})",
        ticks=f"override ticks (at most {MAX_TICKS:,})",
    )
    _value(run, "--seed", kind=_non_negative, metavar="S", help="override the seed")
    output = run.add_mutually_exclusive_group()
    _value(
        output,
        "--out",
        kind=_path,
        metavar="FILE",
        help="send every event to this file instead of the model's "
        "sinks (.csv for CSV, .parquet for Parquet, else JSON Lines; '-' for stdout)",
    )
    _value(
        output,
        "--sink",
        kind=None,
        metavar="NAME",
        help="send every event to one sink: a sink of the model "
        f"file, or one of {', '.join(_PLAIN_SINKS)}",
    )
    _value(
        run,
        "--report",
        kind=_path,
        metavar="PNG",
        help="also write an occupancy plot (.png, .svg, ...)",
    )
    _switch(run, "--no-callbacks", help="run the bare Markov chain (no action callbacks)")
    _switch(run, "--quiet", "-q", help="no progress bar and no summary")
    _switch(
        run,
        "--jitter",
        help="spread event timestamps within their tick (also `jitter: true` in the file)",
    )
    _value(
        run,
        "--record-every",
        kind=_record_every,
        metavar="LEN",
        help="one row of the per-tick tables (and the plot) per LEN: ticks (60) or a duration "
        "in whole ticks (1h); default: the file's record_every, else at most 10,000 rows",
    )
    _add_live_options(run)
    _add_stop_options(run)
    _add_scale_options(run)


def _add_live_options(run: argparse.ArgumentParser) -> None:
    """``run``'s live pacing: --live, --speed, --until-stopped, --max-lag, --on-lag."""
    live = run.add_argument_group(
        "live pacing",
        "stream in real time instead of backfilling as fast as possible (defaults from the "
        "model file's `live:` block)",
    )
    _switch(live, "--live", help="pace the run in real time; timestamps start at the wall clock")
    _value(
        live,
        "--speed",
        kind=_speed,
        metavar="X",
        help="live speed-up factor (60: an hour a minute)",
    )
    _switch(
        live,
        "--until-stopped",
        help="run until SIGINT/SIGTERM instead of for the model's ticks (live only)",
    )
    _value(
        live,
        "--max-lag",
        kind=_duration,
        metavar="MS",
        help="how far behind real time the run may fall: 500ms, 2s, or milliseconds "
        "(default: one tick)",
    )
    live.add_argument(
        "--on-lag",
        choices=("warn", "fail"),
        help="when the run falls further behind: warn (default) or fail (exit 1)",
    )


def _add_stop_options(run: argparse.ArgumentParser) -> None:
    """``run``'s stop and resume: --checkpoint, --checkpoint-every, --resume, ..."""
    stop = run.add_argument_group(
        "stop and resume",
        "the first SIGINT/SIGTERM stops after the tick in progress, flushes every sink and "
        "prints the ledger (exit 130); a second one interrupts at once",
    )
    _value(
        stop,
        "--checkpoint",
        kind=_path,
        metavar="FILE",
        help="when stopped by a signal, save the run's state here for --resume (default: the "
        "file's checkpoint.path)",
    )
    _value(
        stop,
        "--checkpoint-every",
        kind=_record_every,
        metavar="LEN",
        help="also save it to the --checkpoint FILE every LEN of simulated time: ticks (600) or "
        "a duration in whole ticks (10m), so a kill -9 loses at most that much",
    )
    _switch(
        stop,
        "--resume-allow-pickle",
        help="with --resume: load subjects stored as a pickle, which runs code from the file; "
        "only for checkpoints you trust",
    )
    _value(
        stop,
        "--resume",
        kind=_path,
        metavar="FILE",
        help="continue the run saved in FILE (same model file; file sinks are appended to)",
    )


def _add_scale_options(run: argparse.ArgumentParser) -> None:
    """``run``'s scale out: --shards, and where they run (--workers or --dask)."""
    scale = run.add_argument_group(
        "scale out",
        "cut the subjects into shards, each with its own random stream; the output is a "
        "function of the model, the seed and the shards only, never of who runs them",
    )
    _value(
        scale,
        "--shards",
        kind=_positive,
        metavar="S",
        help="run in S shards (default: the file's `shards:`; without either, one process)",
    )
    where = scale.add_mutually_exclusive_group()
    _value(
        where,
        "--workers",
        kind=_positive,
        metavar="N",
        help="run the shards in N local processes (default 1: one after the other here)",
    )
    _value(
        where,
        "--dask",
        kind=None,
        metavar="ADDRESS",
        help="run the shards on the Dask cluster at ADDRESS (tcp://host:8786; needs dogesim[dask])",
    )


def _add_models(commands: _Commands) -> None:
    """``dogesim models``."""
    commands.add_parser(
        "models",
        help="list the shipped example models",
        description="List the example models that ship with dogesim; run one by name, e.g. "
        "`dogesim run banking`.",
    )


def _add_init(commands: _Commands) -> None:
    """``dogesim init NAME``."""
    init = commands.add_parser(
        "init",
        help="write a starter model file",
        description="Write NAME.yaml, a small commented model file to start from (an existing "
        "file is never overwritten).",
    )
    init.add_argument("name", metavar="NAME", help="the model's name (NAME.yaml is written)")
    init.add_argument(
        "--directory", "-d", type=_path, default=".", metavar="DIR", help="where to write it"
    )


def _add_validate(commands: _Commands) -> None:
    """``dogesim validate MODEL.yaml...``."""
    validate = commands.add_parser(
        "validate", help="check model files", description="Check model files without running."
    )
    validate.add_argument("models", metavar="MODEL.yaml", nargs="+")


def _add_graph(commands: _Commands) -> None:
    """``dogesim graph MODEL.yaml``."""
    graph = commands.add_parser(
        "graph",
        help="draw a model's state machine",
        description="Draw a model's state machine as DOT or Mermaid text, or a PNG (Graphviz).",
    )
    graph.add_argument("model", metavar="MODEL.yaml")
    graph.add_argument("--format", "-f", choices=("dot", "mermaid", "png"), default="dot")
    graph.add_argument(
        "--output", "-o", metavar="FILE", help="where to write (default: stdout; required for png)"
    )


def _add_report(commands: _Commands) -> None:
    """``dogesim report EVENTS --model MODEL.yaml -o PNG``."""
    report = commands.add_parser(
        "report",
        help="plot occupancy from an event log",
        description="Plot the occupancy shares an event log implies against a run of the "
        "model over the same window and the model's analytic expectation, and print the "
        "total variation distance per tick (mean, max). The log must start when the "
        "subjects were created.",
    )
    report.add_argument("events", metavar="EVENTS", help="event log (.jsonl, .csv or .parquet)")
    report.add_argument("--model", "-m", required=True, metavar="MODEL.yaml")
    report.add_argument("--output", "-o", type=_path, required=True, metavar="PNG")
    report.add_argument(
        "--no-simulation", action="store_true", help="compare with the analytic line only"
    )
    _add_population(
        report,
        subjects="population size (default: the model's)",
        ticks="window length (default: the model's)",
    )
    _add_field_options(report)


def _add_fit(commands: _Commands) -> None:
    """``dogesim fit EVENTS -o MODEL.yaml``: states, window, population, output."""
    fit = commands.add_parser(
        "fit",
        help="fit per-tick probabilities from an event log",
        description="Fit each transition's per-tick probability by maximum likelihood (events "
        "/ subject-ticks in the source state) with Wilson intervals, and write a model file.",
    )
    fit.add_argument("events", metavar="EVENTS", help="event log (.jsonl, .csv or .parquet)")
    fit.add_argument(
        "--states", metavar="A,B,C", help="the states (default: the model's, else those in the log)"
    )
    fit.add_argument("--initial", metavar="STATE", help="the initial state")
    fit.add_argument(
        "--tick",
        type=_tick,
        metavar="LEN",
        help="tick length: 500ms, 1s, 1m, ..., or calendar months 1mo, 1y (default: the model's)",
    )
    fit.add_argument(
        "--model",
        "-m",
        metavar="MODEL.yaml",
        help="the configured model: compared with, and gives defaults",
    )
    fit.add_argument(
        "--start",
        type=_timestamp,
        metavar="TIME",
        help="window start, ISO-8601 or epoch ms (default: the model's start, "
        "else the first event)",
    )
    window = fit.add_mutually_exclusive_group()
    window.add_argument("--end", type=_timestamp, metavar="TIME", help="window end (exclusive)")
    window.add_argument(
        "--window-ticks",
        type=_positive,
        metavar="T",
        help="window length in ticks (default: the model's ticks, else up to the last event)",
    )
    fit.add_argument(
        "--subjects",
        type=_positive,
        metavar="N",
        help="population size; subjects without events sit in the initial state "
        "(default: the model's count; without a model, all subjects are in the "
        "log)",
    )
    fit.add_argument("--confidence", type=float, default=0.95, metavar="C")
    fit.add_argument(
        "--output", "-o", required=True, metavar="MODEL.yaml", help="the fitted model file to write"
    )
    fit.add_argument("--plot", metavar="PNG", help="also plot fitted vs configured")
    fit.add_argument(
        "--kernel",
        action="store_true",
        help="also fit each state's stay length and its destination given the length "
        "(dwell kernels, first stays apart)",
    )
    varying = fit.add_mutually_exclusive_group()
    varying.add_argument(
        "--by-month", action="store_true", help="fit chances by month of year (by_month:)"
    )
    varying.add_argument(
        "--by-age",
        type=_age_bins,
        metavar="EDGES",
        help="fit chances by age, bins' lower edges in ticks (0,12,24; by_age:)",
    )
    population = fit.add_argument_group("population, weights and groups")
    population.add_argument(
        "--roster",
        metavar="ROSTER",
        help="the whole population (.csv or .jsonl): a subject column and its state at the "
        "window start (state, initial_state or from_state), optionally a start time; "
        "subjects without events count (instead of --subjects)",
    )
    population.add_argument(
        "--weight",
        metavar="COLUMN",
        help="survey weights: this column of the roster, else of the event log (one value "
        "per subject); intervals use Kish's effective sample size",
    )
    population.add_argument(
        "--by",
        metavar="COLUMN",
        help="fit one model per value of this subject column (roster, else log) and write "
        "them as one model file with an entity type per group, sized by its share",
    )
    _add_field_options(fit)
