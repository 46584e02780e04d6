"""The ``dogesim`` command: a thin shell over the library (parse, load, run, report).

- ``dogesim run MODEL.yaml``: run a model file (progress bar on stderr, summary on stdout);
  a bare name (``dogesim run banking``) runs the shipped model when no such file exists.
- ``dogesim models``: list the shipped example models with one-line descriptions.
- ``dogesim init NAME``: write ``NAME.yaml``, a starter model file (never overwriting).
- ``dogesim validate MODEL.yaml...``: check model files without running them.
- ``dogesim graph MODEL.yaml``: the state machine as DOT, Mermaid or PNG.
- ``dogesim report EVENTS --model MODEL.yaml -o plot.png``: observed vs analytic occupancy
  from a saved event log.
- ``dogesim fit EVENTS --states a,b,c -o model.yaml``: fit per-tick probabilities from an
  event log and write a model file.
- `main(argv)`: the entry point (console script ``dogesim``; also ``python -m dogesim.cli``).

``run`` also paces a run in real time (``--live``, ``--speed``, ``--until-stopped``,
``--max-lag``, ``--on-lag``), jitters timestamps (``--jitter``), and stops cleanly: the first
SIGINT or SIGTERM stops the run after the tick in progress, closes and flushes every sink,
prints the ledger and, with ``--checkpoint FILE``, saves where the run stopped so that
``--resume FILE`` continues it (no event lost or repeated). A second signal interrupts at
once. ``--checkpoint-every LEN`` (ticks, or a duration of simulated time such as ``10m``)
also writes that file during the run, so even a ``kill -9`` loses at most LEN of work; the
model file's ``checkpoint: {path: ..., every: ...}`` is the default. ``--resume`` checks the
file's settings (seed, ticks, subjects, ...) against the checkpoint and names a change;
``--resume-allow-pickle`` loads subjects stored as a pickle (it runs code from the file).

``--shards S`` (default: the file's ``shards:``) cuts the subjects into S shards, run one
after the other here, in ``--workers N`` local processes, or on the Dask cluster at
``--dask ADDRESS`` (`dogesim.shards.run_sharded`); file outputs are merged, and the bytes are
a function of the model, the seed and S only. Models with shared resources refuse S > 1.

Output paths (``--out``, ``--report``, ``--checkpoint``, ``-o``) are checked before anything
runs: a directory that cannot be made or written, a name too long, or a plot extension
matplotlib cannot write is refused at once. ``--ticks`` and ``--subjects`` are bounded
(`MAX_TICKS`, `MAX_SUBJECTS`). Everything the command prints passes through
`dogesim.redact.mask`: ``${VAR}`` values and URL passwords never appear.

Exit status: 0 on success; 2 on a bad model file or bad arguments (one line on stderr, no
traceback); 1 when a sink lost events (the ledger is printed), a live run fell behind with
``--on-lag fail``, or a checkpoint could not be written; 130 when stopped by SIGINT/SIGTERM
(Ctrl-C), after every sink was closed and flushed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from dogesim import redact
from dogesim.engine import effective_model
from dogesim.errors import DogesimError, ModelError, RunError, SinkConfigError, SinkError
from dogesim.modelfile.source import MAX_SUBJECTS, MAX_TICKS

__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SINK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_SINK = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Sink types `--sink` can name without settings in the model file.
_PLAIN_SINKS = ("stdout", "printing", "counting", "memory")


class _UsageError(Exception):
    """Bad command-line arguments (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose errors are one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


#: Plot file extensions matplotlib writes without extra packages.
_PLOT_EXTENSIONS = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff")


def _whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum` (and at most `maximum`)."""

    def parse(text: str) -> int:
        if len(text) > 40:  # int() of thousands of digits is refused (and slow)
            raise argparse.ArgumentTypeError(f"{text[:20]!r}... is not a whole number")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} must be at most {maximum:,}")
        return value

    return parse


_positive = _whole(1)
_non_negative = _whole(0)
_tick_count = _whole(1, MAX_TICKS)
_subject_count = _whole(1, MAX_SUBJECTS)


def _path(text: str) -> str:
    """An argparse type: a non-empty path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    return text


def _writable(flag: str, path: str, *, plot: bool = False) -> None:
    """Refuse, before any work, an output `path` that cannot be written.

    Makes the missing parent directories (the command would make them anyway) and creates
    and removes the file when it does not exist yet, so a read-only mount, a parent that is
    a file or a name too long is found now, not after the run.
    """
    if path == "-" and not plot:
        return
    target = Path(path)
    if plot and target.suffix.lower() not in _PLOT_EXTENSIONS:
        raise _UsageError(
            f"dogesim: {flag} {path}: a plot file ends in one of {', '.join(_PLOT_EXTENSIONS)}"
        )
    try:
        if target.is_dir():
            raise _UsageError(f"dogesim: {flag} {path}: is a directory; give a file name")
        for parent in target.parents:
            if parent.exists() and not parent.is_dir():
                raise _UsageError(
                    f"dogesim: {flag} {path}: cannot be written: {parent} is a file, not a "
                    "directory"
                )
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        raise _UsageError(f"dogesim: {flag} {path}: cannot be written: {exc.strerror}") from None


def _duration(text: str) -> int:
    from dogesim.modelfile import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _record_every(text: str) -> int | str:
    """An argparse type: ticks per row of the result's tables (``60``) or a duration
    (``1h``); whether a duration is whole ticks is checked against the model's tick."""
    if text.isdigit():
        return _positive(text)
    _duration(text)
    return text


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive speed-up factor")
    return value


def _timestamp(text: str) -> int:
    from dogesim.modelfile import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_field_options(parser: argparse.ArgumentParser) -> None:
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


def _fields(args: argparse.Namespace) -> dict[str, str]:
    names = {
        "subject": args.subject_field,
        "timestamp": args.timestamp_field,
        "trigger": args.trigger_field,
        "from_state": args.from_field,
        "to_state": args.to_field,
    }
    return {k: v for k, v in names.items() if v}


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

    run = commands.add_parser("run", help="run a model file", description="Run a model file.")
    run.add_argument(
        "model",
        metavar="MODEL.yaml",
        help="the model file, or the name of a shipped model (see `dogesim models`)",
    )
    run.add_argument(
        "--subjects",
        type=_subject_count,
        metavar="N",
        help=f"override subjects.count (at most {MAX_SUBJECTS:,})",
    )
    run.add_argument(
        "--ticks", type=_tick_count, metavar="T", help=f"override ticks (at most {MAX_TICKS:,})"
    )
    run.add_argument("--seed", type=_non_negative, metavar="S", help="override the seed")
    output = run.add_mutually_exclusive_group()
    output.add_argument(
        "--out",
        type=_path,
        metavar="FILE",
        help="send every event to this file instead of the model's "
        "sinks (.csv for CSV, else JSON Lines; '-' for stdout)",
    )
    output.add_argument(
        "--sink",
        metavar="NAME",
        help="send every event to one sink: a sink of the model "
        f"file, or one of {', '.join(_PLAIN_SINKS)}",
    )
    run.add_argument(
        "--report", type=_path, metavar="PNG", help="also write an occupancy plot (.png, .svg, ...)"
    )
    run.add_argument(
        "--no-callbacks",
        action="store_true",
        help="run the bare Markov chain (no action callbacks)",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    run.add_argument(
        "--jitter",
        action="store_true",
        help="spread event timestamps within their tick (also `jitter: true` in the file)",
    )
    run.add_argument(
        "--record-every",
        type=_record_every,
        metavar="LEN",
        help="one row of the per-tick tables (and the plot) per LEN: ticks (60) or a duration "
        "in whole ticks (1h); default: the file's record_every, else at most 10,000 rows",
    )
    live = run.add_argument_group(
        "live pacing",
        "stream in real time instead of backfilling as fast as possible (defaults from the "
        "model file's `live:` block)",
    )
    live.add_argument(
        "--live",
        action="store_true",
        help="pace the run in real time; timestamps start at the wall clock",
    )
    live.add_argument(
        "--speed", type=_speed, metavar="X", help="live speed-up factor (60: an hour a minute)"
    )
    live.add_argument(
        "--until-stopped",
        action="store_true",
        help="run until SIGINT/SIGTERM instead of for the model's ticks (live only)",
    )
    live.add_argument(
        "--max-lag",
        type=_duration,
        metavar="MS",
        help="how far behind real time the run may fall: 500ms, 2s, or milliseconds "
        "(default: one tick)",
    )
    live.add_argument(
        "--on-lag",
        choices=("warn", "fail"),
        help="when the run falls further behind: warn (default) or fail (exit 1)",
    )
    stop = run.add_argument_group(
        "stop and resume",
        "the first SIGINT/SIGTERM stops after the tick in progress, flushes every sink and "
        "prints the ledger (exit 130); a second one interrupts at once",
    )
    stop.add_argument(
        "--checkpoint",
        type=_path,
        metavar="FILE",
        help="when stopped by a signal, save the run's state here for --resume (default: the "
        "file's checkpoint.path)",
    )
    stop.add_argument(
        "--checkpoint-every",
        type=_record_every,
        metavar="LEN",
        help="also save it to the --checkpoint FILE every LEN of simulated time: ticks (600) or "
        "a duration in whole ticks (10m), so a kill -9 loses at most that much",
    )
    stop.add_argument(
        "--resume-allow-pickle",
        action="store_true",
        help="with --resume: load subjects stored as a pickle, which runs code from the file; "
        "only for checkpoints you trust",
    )
    stop.add_argument(
        "--resume",
        type=_path,
        metavar="FILE",
        help="continue the run saved in FILE (same model file; file sinks are appended to)",
    )

    scale = run.add_argument_group(
        "scale out",
        "cut the subjects into shards, each with its own random stream; the output is a "
        "function of the model, the seed and the shards only, never of who runs them",
    )
    scale.add_argument(
        "--shards",
        type=_positive,
        metavar="S",
        help="run in S shards (default: the file's `shards:`; without either, one process)",
    )
    where = scale.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="run the shards in N local processes (default 1: one after the other here)",
    )
    where.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run the shards on the Dask cluster at ADDRESS (tcp://host:8786; needs dogesim[dask])",
    )

    commands.add_parser(
        "models",
        help="list the shipped example models",
        description="List the example models that ship with dogesim; run one by name, e.g. "
        "`dogesim run banking`.",
    )
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

    validate = commands.add_parser(
        "validate", help="check model files", description="Check model files without running."
    )
    validate.add_argument("models", metavar="MODEL.yaml", nargs="+")

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

    report = commands.add_parser(
        "report",
        help="plot occupancy from an event log",
        description="Plot the occupancy an event log implies against the model's analytic "
        "expectation. The log must start when the subjects were created.",
    )
    report.add_argument("events", metavar="EVENTS", help="event log (.jsonl or .csv)")
    report.add_argument("--model", "-m", required=True, metavar="MODEL.yaml")
    report.add_argument("--output", "-o", type=_path, required=True, metavar="PNG")
    report.add_argument(
        "--subjects",
        type=_subject_count,
        metavar="N",
        help="population size (default: the model's)",
    )
    report.add_argument(
        "--ticks", type=_tick_count, metavar="T", help="window length (default: the model's)"
    )
    _add_field_options(report)

    fit = commands.add_parser(
        "fit",
        help="fit per-tick probabilities from an event log",
        description="Fit each transition's per-tick probability by maximum likelihood (events "
        "/ subject-ticks in the source state) with Wilson intervals, and write a model file.",
    )
    fit.add_argument("events", metavar="EVENTS", help="event log (.jsonl or .csv)")
    fit.add_argument(
        "--states", metavar="A,B,C", help="the states (default: the model's, else those in the log)"
    )
    fit.add_argument("--initial", metavar="STATE", help="the initial state")
    fit.add_argument(
        "--tick",
        type=_duration,
        metavar="LEN",
        help="tick length: 500ms, 1s, 1m, ... (default: the model's)",
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
    _add_field_options(fit)
    return parser


# -- commands ----------------------------------------------------------------------------


def _plot_module() -> Any:
    try:
        from dogesim.report import plots
    except ImportError as exc:
        raise DogesimError(
            f"plots need matplotlib and pandas ({exc}); pip install 'dogesim[plot]'"
        ) from None
    return plots


def _output_sink(path: str, *, append: bool = False) -> Any:
    from dogesim.sinks.compression import log_format
    from dogesim.sinks.files import CsvSink, JsonLinesSink

    if path != "-" and log_format(path) == "csv":
        if append:
            raise _UsageError(
                f"dogesim run: --out {path}: a CSV file cannot be continued by --resume; "
                "use a .jsonl file"
            )
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return CsvSink(path)
    if path != "-":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return JsonLinesSink(path, append=append)


def _named_sink(spec: Any, name: str, *, append: bool = False) -> Any:
    from dogesim.modelfile import SinkSpec

    if name in spec.sinks:
        return spec.sinks[name].build(append=append)
    if name in _PLAIN_SINKS:
        return SinkSpec(name, name, {}).build()
    raise DogesimError(
        f"--sink {name!r}: the model file has no such sink (its sinks: "
        f"{', '.join(spec.sinks) or 'none'}) and it is not one of {', '.join(_PLAIN_SINKS)}"
    )


#: Seconds between status lines on stderr when it is not a terminal (logs, CI, pipes).
STATUS_EVERY_S = 10.0

#: Seconds between refreshes of the progress bar's events/s and ledger figures.
_BAR_REFRESH_S = 0.5


def _ledgers(simulation: Any) -> tuple[list[Any], int]:
    """The ledgers of the run's distinct sinks, and how many of its sinks keep none."""
    from dogesim.sinks.base import ledger_of

    ledgers = []
    plain = 0
    for sink in simulation.model.sinks():
        ledger = ledger_of(sink)
        if ledger is None:
            plain += 1
        else:
            ledgers.append(ledger)
    return ledgers, plain


def closing_line(simulation: Any) -> str:
    """What became of the run's sinks, as the ledgers tell it: "every sink was closed and
    flushed" only when every ledger shows nothing lost; else the sinks that lost events,
    with their counts."""
    ledgers, plain = _ledgers(simulation)
    lost = [ledger for ledger in ledgers if not ledger.ok]
    if lost:
        named = "; ".join(
            f"{ledger.sink} lost {ledger.lost:,} of {ledger.collected:,} events "
            f"({ledger.failed:,} failed, {ledger.pending:,} pending)"
            for ledger in lost
        )
        return f"the sinks were closed, but not everything was delivered: {named}"
    if plain:
        kept = f"the ledgers of {len(ledgers)} show nothing lost; " if ledgers else ""
        return (
            f"every sink was closed ({kept}{plain} keep no ledger, so their delivery is not "
            "counted)"
        )
    return "every sink was closed and flushed"


class _Feedback:
    """Progress of a run on stderr: on a terminal a tqdm bar whose postfix shows events/s
    and the ledgers; elsewhere (a log, CI, a pipe) one status line every `every` seconds;
    nothing when quiet.

    Events so far are what the ledgered sinks collected: with one ledgered sink that is
    the run's events; with several, their deliveries are summed and called so.
    """

    def __init__(
        self,
        simulation: Any,
        stream: TextIO,
        *,
        quiet: bool,
        tty: bool | None = None,
        every: float = STATUS_EVERY_S,
    ) -> None:
        from tqdm import tqdm

        self.total: int | None = simulation.ticks
        self.stream = stream
        self.ledgers = _ledgers(simulation)[0]
        self.quiet = quiet
        self.tty = _isatty(stream) if tty is None else tty
        self.every = every if not self.tty else _BAR_REFRESH_S
        self.started = time.monotonic()
        self.next_status = self.started + self.every
        self.bar = tqdm(
            total=self.total,
            unit="tick",
            file=stream,
            delay=1.0,
            mininterval=0.25,
            disable=quiet or not self.tty,
            leave=False,
            dynamic_ncols=True,
        )
        self.done = 0

    def update(self, done: int) -> None:
        """Called by the engine with the ticks done (after every busy tick): cheap unless a
        refresh is due."""
        self.done = done
        if self.quiet:
            return
        step = done - self.bar.n
        if step > 0 and self.tty:
            self.bar.update(step)
        now = time.monotonic()
        if now < self.next_status:
            return
        self.next_status = now + self.every
        if self.tty:
            self.bar.set_postfix_str(self.status(now), refresh=False)
        else:
            print(f"dogesim: {self.position()}, {self.status(now)}", file=self.stream, flush=True)

    def position(self) -> str:
        """``tick 500/1,440 (34%)``, or ``tick 500`` for a run without a tick count."""
        if self.total:
            return f"tick {self.done:,}/{self.total:,} ({100 * self.done // self.total}%)"
        return f"tick {self.done:,}"

    def status(self, now: float | None = None) -> str:
        """Events so far and per second, and each ledger's counts."""
        elapsed = max((time.monotonic() if now is None else now) - self.started, 1e-9)
        if not self.ledgers:
            return "no sink keeps a ledger"
        collected = sum(ledger.collected for ledger in self.ledgers)
        what = "events" if len(self.ledgers) == 1 else f"deliveries to {len(self.ledgers)} sinks"
        counts = "; ".join(
            f"{ledger.sink}: {ledger.acknowledged:,} acknowledged of {ledger.collected:,}"
            + (f", {ledger.failed:,} failed" if ledger.failed else "")
            for ledger in self.ledgers
        )
        return f"{collected:,} {what} ({collected / elapsed:,.0f}/s); {counts}"

    def close(self) -> None:
        self.bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def _stop_on_signals(simulation: Any) -> Iterator[list[str]]:
    """While the block runs, the first SIGINT/SIGTERM asks `simulation` to stop after the tick
    in progress; a second one raises `KeyboardInterrupt` (stop at once, sinks still closed).

    Yields the names of the signals received. Outside the main thread (where Python cannot
    install handlers) signals keep their usual effect.
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if len(received) > 1:
            raise KeyboardInterrupt
        simulation.stop()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


def _check_outputs(args: argparse.Namespace) -> None:
    """Every file `run` will write can be written: checked before the run starts."""
    if args.out:
        _writable("--out", args.out)
    if args.report:
        _writable("--report", args.report, plot=True)
    if args.checkpoint:
        _writable("--checkpoint", args.checkpoint)


def _check_run_arguments(args: argparse.Namespace, spec: Any) -> None:
    """Refuse flag combinations that cannot mean anything (exit 2 with one line)."""
    live = args.live or spec.live.enabled
    for flag, given in (
        ("--speed", args.speed is not None),
        ("--until-stopped", args.until_stopped),
        ("--max-lag", args.max_lag is not None),
        ("--on-lag", args.on_lag is not None),
    ):
        if given and not live:
            raise _UsageError(
                f"dogesim run: {flag} applies to live runs; add --live (or `live: "
                "{enabled: true}` in the model file)"
            )
    _check_checkpoint_arguments(args)
    if args.shards is not None or spec.shards is not None:
        _check_shard_arguments(args, spec)
    elif args.workers is not None or args.dask is not None:
        flag = "--workers" if args.workers is not None else "--dask"
        raise _UsageError(
            f"dogesim run: {flag} runs shards; add --shards S (or `shards: S` in the model file)"
        )
    if args.resume is not None:
        for flag, given in (
            ("--subjects", args.subjects is not None),
            ("--ticks", args.ticks is not None),
            ("--seed", args.seed is not None),
            ("--jitter", args.jitter),
            ("--record-every", args.record_every is not None),
            ("--until-stopped", args.until_stopped),
        ):
            if given:
                raise _UsageError(
                    f"dogesim run: {flag} cannot change a resumed run (the checkpoint "
                    "fixes subjects, ticks, seed, jitter and record_every)"
                )


def _check_checkpoint_arguments(args: argparse.Namespace) -> None:
    """--checkpoint-every needs a file to write to, --resume-allow-pickle a --resume."""
    if args.checkpoint_every is not None and not args.checkpoint:
        raise _UsageError(
            "dogesim run: --checkpoint-every needs --checkpoint FILE (or `checkpoint: {path: "
            "FILE}` in the model file), the file the checkpoints are written to"
        )
    if args.resume_allow_pickle and args.resume is None:
        raise _UsageError("dogesim run: --resume-allow-pickle applies to --resume FILE only")


def _check_shard_arguments(args: argparse.Namespace, spec: Any) -> None:
    """Refuse what a sharded run does not do (exit 2 with one line)."""
    for flag, given in (
        ("--resume", args.resume is not None),
        ("--checkpoint", bool(args.checkpoint)),
        ("--checkpoint-every", args.checkpoint_every is not None),
        ("--live", args.live or spec.live.enabled),
        ("--record-every", args.record_every is not None),
        ("--sink", args.sink is not None),
        ("--out -", args.out == "-"),
        # The file's own sinks are built by each shard from the file, callbacks included.
        ("--no-callbacks without --out", args.no_callbacks and not args.out),
    ):
        if given:
            raise _UsageError(
                f"dogesim run: {flag} cannot be used with shards (--shards or the file's "
                "`shards:`); run it in one process"
            )
    shards = args.shards if args.shards is not None else spec.shards
    if shards > 1 and spec.resources:
        raise _UsageError(
            f"dogesim run: {spec.path or spec.name}: its subjects share the resources "
            f"{sorted(spec.resources)}, so they cannot be cut into {shards} shards (a queue "
            "cannot span processes); run it with --shards 1"
        )


def _print_ledgers(simulation: Any, err: TextIO) -> None:
    from dogesim.sinks.base import ledger_of

    for sink in simulation.model.sinks():
        ledger = ledger_of(sink)
        if ledger is not None:
            print(f"  sink {ledger.summary()}", file=err)


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dogesim.modelfile import load_model_file

    if args.resume is not None:
        spec = load_model_file(args.model)
    else:
        spec = load_model_file(args.model, subjects=args.subjects, ticks=args.ticks, seed=args.seed)
    if not args.checkpoint and spec.checkpoint_path is not None:
        args.checkpoint = spec.checkpoint_path
    _check_run_arguments(args, spec)
    _check_outputs(args)
    if args.report:
        _plot_module()  # fail before running when plots cannot be made
    if args.shards is not None or spec.shards is not None:
        return _cmd_run_sharded(args, spec, out, err)
    append = args.resume is not None
    sinks: Any = None
    if args.out:
        sinks = [_output_sink(args.out, append=append)]
        destination = args.out
    elif args.sink:
        sinks = [_named_sink(spec, args.sink, append=append)]
        destination = f"sink {args.sink}"
    else:
        names = spec.used_sinks()
        destination = ", ".join(spec.sinks[n].describe() for n in names) or "no sinks"
    live = {
        "live": True if args.live else None,
        "speed": args.speed,
        "max_lag_ms": args.max_lag,
        "on_lag": args.on_lag,
    }
    checkpoints = {"checkpoint_path": args.checkpoint, "checkpoint_every": args.checkpoint_every}
    if args.resume is not None:
        simulation = spec.resume(
            args.resume,
            sinks=sinks,
            callbacks=not args.no_callbacks,
            allow_pickle=args.resume_allow_pickle,
            **checkpoints,
            **live,
        )
    else:
        simulation = spec.simulation(
            sinks=sinks,
            callbacks=not args.no_callbacks,
            jitter=True if args.jitter else None,
            record_every=args.record_every,
            until_stopped=True if args.until_stopped else None,
            **checkpoints,
            **live,
        )
    bar = _Feedback(simulation, err, quiet=args.quiet)
    simulation.progress = bar.update
    started = time.perf_counter()
    with _stop_on_signals(simulation) as received:
        try:
            result = simulation.run()
        except SinkConfigError:
            bar.close()
            raise
        except SinkError as exc:
            bar.close()
            if simulation.result is not None and not args.quiet:
                print(simulation.result.summary(), file=out)
            ledgers = exc.ledgers or (simulation.result.ledgers if simulation.result else [])
            print(f"dogesim: events were lost: {exc}", file=err)
            for ledger in ledgers:
                print(f"  sink {ledger.summary()}", file=err)
            return EXIT_SINK
        except RunError as exc:
            bar.close()
            print(f"dogesim: the run failed: {' '.join(str(exc).split())}", file=err)
            _print_ledgers(simulation, err)
            return EXIT_SINK
        except KeyboardInterrupt:
            # A second signal, or ^C raised by a callback: the engine closed every sink.
            bar.close()
            print(f"dogesim: interrupted; {closing_line(simulation)}", file=err)
            _print_ledgers(simulation, err)
            return EXIT_INTERRUPTED
        except Exception as exc:
            # A callback, factory or mapper of the model raised: the run stopped there and
            # the engine closed every sink; say where, and what was delivered.
            bar.close()
            print(f"dogesim: the run failed: {_raised_where(exc)}", file=err)
            _print_ledgers(simulation, err)
            return EXIT_SINK
        finally:
            bar.close()
    wall = time.perf_counter() - started
    if not args.quiet:
        print(result.summary(), file=out)
        rate = result.events / wall if wall > 0 else float("inf")
        print(
            f"wall time {wall:.3f} s: {result.events:,} events ({rate:,.0f} events/s), "
            f"{result.moves:,} moves; events -> {destination}",
            file=out,
        )
        rows = len(result.row_ticks())
        every = result.record_every
        print(
            f"per-tick tables: {rows:,} rows of {every:,} tick{'s' if every != 1 else ''}",
            file=out,
        )
        print(closing_line(simulation), file=out)
        if result.max_lag_ms is not None:
            print(
                f"live: at most {result.max_lag_ms:,.0f} ms behind real time (allowed "
                f"{simulation.max_lag_ms:,.0f} ms; {result.lag_warnings} ticks over)",
                file=out,
            )
    if result.stopped:
        return _stopped(args, simulation, result, received, err)
    _write_report(args, spec, result, out)
    return EXIT_OK


class _OutModel:
    """Builds one shard's model of a model file with every event going to that shard's
    part of `--out` (picklable, so local processes and Dask workers can build it)."""

    def __init__(self, path: str, out: str, ticks: int, *, callbacks: bool) -> None:
        self.path = path
        self.out = out
        self.ticks = ticks
        self.callbacks = callbacks

    def __call__(self, shard: Any) -> Any:
        from dogesim.modelfile import load_model_file
        from dogesim.sinks.compression import log_format

        spec = load_model_file(self.path, ticks=self.ticks)
        sink = shard.csv(self.out) if log_format(self.out) == "csv" else shard.jsonl(self.out)
        model = spec.build_model([sink], callbacks=self.callbacks)
        return (model, [sink]) if spec.churn is not None else model


class _FileSubjects:
    """The model file's subjects for one shard: the file's factory, seeded from the global
    `random` (which each shard seeds with its own seed before it makes subjects)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._create: Callable[[], Any] | None = None

    def create(self) -> Any:
        if self._create is None:
            import random

            from dogesim.modelfile import load_model_file

            spec = load_model_file(self.path)
            self._create = spec.subject_factory(random.getrandbits(63))
        return self._create()


def _sharded_run(args: argparse.Namespace, spec: Any) -> Any:
    """The `ShardedRun` of this command line: the file's sinks, or every event to --out."""
    from dogesim.shards import ShardedRun

    path = os.path.abspath(spec.path)
    shards = args.shards if args.shards is not None else spec.shards
    jitter = True if args.jitter else None
    if not args.out:
        return ShardedRun(
            path,
            subjects=spec.subjects.count,
            ticks=spec.ticks,
            seed=spec.seed,
            shards=shards,
            jitter=jitter,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    return ShardedRun(
        _OutModel(path, os.path.abspath(args.out), spec.ticks, callbacks=not args.no_callbacks),
        subjects=spec.subjects.count,
        subject_factory=_FileSubjects(path),
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
        seed=spec.seed,
        shards=shards,
        arrivals=spec.arrivals,
        arrivals_profile=spec.arrivals_profile,
        churn=spec.churn,
        jitter=spec.jitter or bool(args.jitter),
    )


def _cmd_run_sharded(args: argparse.Namespace, spec: Any, out: TextIO, err: TextIO) -> int:
    """`dogesim run --shards S [--workers N | --dask ADDRESS]`: run, merge, summarise."""
    from dogesim.shards import run_sharded

    if spec.path is None:
        raise _UsageError("dogesim run: a sharded run needs a model file on disk")
    run = _sharded_run(args, spec)
    destination = (
        args.out or ", ".join(spec.sinks[n].describe() for n in spec.used_sinks()) or "no sinks"
    )
    started = time.perf_counter()
    try:
        result = run_sharded(run, workers=args.workers, dask=args.dask)
    except ModelError as exc:
        raise _UsageError(f"dogesim run: {' '.join(str(exc).split())}") from None
    except (SinkError, RunError) as exc:
        print(f"dogesim: the sharded run failed: {exc}", file=err)
        return EXIT_SINK
    wall = time.perf_counter() - started
    if not args.quiet:
        print(result.summary(), file=out)
        rate = result.events / wall if wall > 0 else float("inf")
        print(
            f"wall time {wall:.3f} s: {result.events:,} events ({rate:,.0f} events/s), "
            f"{result.moves:,} moves; events -> {destination}",
            file=out,
        )
    _write_report(args, spec, result, out)
    return EXIT_OK


def _write_report(args: argparse.Namespace, spec: Any, result: Any, out: TextIO) -> None:
    """The occupancy plot of --report, when asked for."""
    if not args.report:
        return
    plots = _plot_module()
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    figure = plots.plot_occupancy(result, title=f"{spec.name}: occupancy per state")
    figure.savefig(args.report, dpi=110)
    if not args.quiet:
        print(f"occupancy plot -> {args.report}", file=out)


def _raised_where(exc: BaseException) -> str:
    """``Type: message (at file:line in function)`` for the innermost frame of `exc`."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


def _stopped(
    args: argparse.Namespace, simulation: Any, result: Any, received: list[str], err: TextIO
) -> int:
    """Report a run stopped by a signal, and save its checkpoint when asked to."""
    cause = received[0] if received else "a stop request"
    of = f" of {simulation.ticks}" if simulation.ticks is not None else ""
    print(
        f"dogesim: stopped by {cause} after tick {result.ticks}{of}; {closing_line(simulation)}",
        file=err,
    )
    if not args.checkpoint:
        return EXIT_INTERRUPTED
    try:
        Path(args.checkpoint).parent.mkdir(parents=True, exist_ok=True)
        simulation.checkpoint(args.checkpoint)
    except (RunError, OSError) as exc:
        print(f"dogesim: the checkpoint was not written: {exc}", file=err)
        return EXIT_SINK
    print(
        f"dogesim: checkpoint -> {args.checkpoint}; continue with: dogesim run "
        f"{args.model} --resume {args.checkpoint}" + (f" --out {args.out}" if args.out else ""),
        file=err,
    )
    return EXIT_INTERRUPTED


def _cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dogesim.modelfile import load_model_file

    for path in args.models:
        spec = load_model_file(path)
        print(f"{path}: ok: {spec.summary()}", file=out)
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dogesim.graph import render_png, to_dot, to_mermaid
    from dogesim.modelfile import load_model_file

    spec = load_model_file(args.model)
    model = spec.model
    if args.output:
        _writable("--output", args.output)
    if args.format == "png":
        if not args.output:
            raise _UsageError("dogesim graph: --format png needs --output FILE.png")
        render_png(model, args.output)
        print(f"graph -> {args.output}", file=out)
        return EXIT_OK
    text = to_dot(model) if args.format == "dot" else to_mermaid(model)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"graph -> {args.output}", file=out)
    else:
        out.write(text)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
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
    observed = tables.observed_occupancy(
        events,
        model,
        subjects=spec.subjects.count,
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
    )
    figure = plots.plot_occupancy(
        model=model,
        observed=observed,
        subjects=spec.subjects.count,
        ticks=spec.ticks,
        tick_ms=spec.tick_ms,
        timestamp_start=spec.timestamp_start,
        title=f"{spec.name}: observed ({os.path.basename(args.events)}) vs analytic",
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


def _cmd_fit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dogesim.modelfile import load_model_file

    try:
        from dogesim.report.fit import fit_event_log
    except ImportError as exc:
        raise DogesimError(f"fit needs pandas ({exc}); pip install 'dogesim[plot]'") from None
    _writable("--output", args.output)
    if args.plot:
        _writable("--plot", args.plot, plot=True)
    spec = load_model_file(args.model) if args.model else None
    states = [s.strip() for s in args.states.split(",") if s.strip()] if args.states else None
    if states is None and spec is None:
        raise _UsageError("dogesim fit: give --states A,B,C or --model MODEL.yaml")
    tick_ms = args.tick if args.tick is not None else (spec.tick_ms if spec else None)
    if tick_ms is None:
        raise _UsageError("dogesim fit: give --tick (e.g. 1m) or --model MODEL.yaml")
    ticks = args.window_ticks
    if ticks is None and args.end is None and spec is not None and args.start is None:
        ticks = spec.ticks
    subjects = (
        args.subjects if args.subjects is not None else (spec.subjects.count if spec else None)
    )
    result = fit_event_log(
        args.events,
        tick_ms=tick_ms,
        states=states,
        initial_state=args.initial,
        window_start=args.start,
        window_end=args.end,
        ticks=ticks,
        subjects=subjects,
        model=spec,
        confidence=args.confidence,
        fields=_fields(args),
    )
    name = Path(args.output).stem
    result.write_model_file(args.output, name=name, template=spec)
    table = result.table()
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.6g}"), file=out)
    print(
        f"{result.events} events, {result.subjects} subjects, {result.ticks} ticks; "
        f"log-likelihood {result.log_likelihood:.3f}",
        file=out,
    )
    print(f"fitted model -> {args.output}", file=out)
    if args.plot:
        figure = result.plot()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.plot, dpi=110)
        print(f"fit plot -> {args.plot}", file=out)
    return EXIT_OK


def _cmd_models(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dogesim.modelfile.shipped import model_description, shipped_models

    models = shipped_models()
    if not models:
        raise DogesimError("no shipped models were found; reinstall dogesim")
    width = max(len(name) for name in models)
    for name, path in models.items():
        print(f"{name:<{width}}  {model_description(path)}", file=out)
    print(
        f"\nrun one with `dogesim run NAME` (e.g. dogesim run {next(iter(models))}); "
        f"copy one from {next(iter(models.values())).parent}",
        file=out,
    )
    return EXIT_OK


def _cmd_init(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from dogesim.modelfile.shipped import starter_model

    name = args.name[: -len(".yaml")] if args.name.endswith(".yaml") else args.name
    try:
        text = starter_model(name)
    except ValueError as exc:
        raise _UsageError(f"dogesim init: {exc}") from None
    target = Path(args.directory) / f"{name}.yaml"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as handle:  # "x": never overwrite
            handle.write(text)
    except FileExistsError:
        raise _UsageError(
            f"dogesim init: {target} already exists; not overwritten (choose another NAME "
            "or remove it)"
        ) from None
    except OSError as exc:
        raise _UsageError(f"dogesim init: {target}: cannot be written: {exc.strerror}") from None
    print(f"model file -> {target}; run it with: dogesim run {target}", file=out)
    return EXIT_OK


def _resolve_models(args: argparse.Namespace) -> None:
    """Bare model names (``banking``) mean the shipped model when no such file exists."""
    from dogesim.modelfile.shipped import resolve_model, shipped_models

    def resolve(text: str) -> str:
        path = resolve_model(text)
        bare = os.sep not in text and not (os.altsep and os.altsep in text)
        if bare and not Path(path).exists():
            names = ", ".join(shipped_models()) or "none"
            raise _UsageError(
                f"dogesim: {text}: no such model file, and no shipped model of that name "
                f"(shipped: {names}; see dogesim models)"
            )
        return path

    if getattr(args, "model", None):
        args.model = resolve(args.model)
    if getattr(args, "models", None):
        args.models = [resolve(text) for text in args.models]


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO, TextIO], int]] = {
    "models": _cmd_models,
    "init": _cmd_init,
    "run": _cmd_run,
    "validate": _cmd_validate,
    "graph": _cmd_graph,
    "report": _cmd_report,
    "fit": _cmd_fit,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``dogesim`` command with `argv` (default: ``sys.argv[1:]``); return the exit
    status."""
    # Everything the command says passes through the mask: ${VAR} values and URL passwords
    # must not reach a terminal or a log. sys.stderr too, for warnings and logging's
    # last-resort handler; stdout is left alone, where a stdout sink writes events.
    real_err = sys.stderr
    out, err = redact.MaskingStream(sys.stdout), redact.MaskingStream(real_err)
    sys.stderr = err
    try:
        return _main(argv, out, err)  # type: ignore[arg-type]
    finally:
        sys.stderr = real_err


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> int:
    try:
        try:
            args = build_parser().parse_args(list(argv) if argv is not None else None)
        except SystemExit as exc:  # --help and --version
            return int(exc.code) if isinstance(exc.code, int) else EXIT_OK
        _resolve_models(args)
        return _COMMANDS[args.command](args, out, err)
    except _UsageError as exc:
        print(str(exc), file=err)
        return EXIT_USAGE
    except SinkConfigError as exc:
        # A sink that cannot be set up (bad URL, missing table, invalid schema) is a bad
        # model or argument: nothing was sent, nothing was lost.
        print(f"dogesim: {' '.join(str(exc).split())}", file=err)
        return EXIT_USAGE
    except SinkError as exc:
        print(f"dogesim: a sink failed: {exc}", file=err)
        return EXIT_SINK
    except DogesimError as exc:
        print(f"dogesim: {' '.join(str(exc).split())}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Outside a run (loading, validating, plotting): sinks built so far were closed.
        print("dogesim: interrupted", file=err)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (e.g. `dogesim graph ... | head`): stop quietly,
        # and point stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception:
        # A bug, not a bad input: show the traceback (masked), exit 1.
        print("dogesim: internal error (please report it):", file=err)
        print(traceback.format_exc().rstrip(), file=err)
        return EXIT_SINK


if __name__ == "__main__":
    sys.exit(main())
