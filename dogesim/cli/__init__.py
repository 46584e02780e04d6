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
`dogesim.redact.mask`: URL passwords and secrets (``${DB_PASSWORD}``, ``sasl.password``)
never appear.

Exit status: 0 on success; 2 on a bad model file or bad arguments (one line on stderr, no
traceback); 1 when a sink lost events (the ledger is printed), a live run fell behind with
``--on-lag fail``, or a checkpoint could not be written; 130 when stopped by SIGINT/SIGTERM
(Ctrl-C), after every sink was closed and flushed.

The package, one module per concern (a new flag goes in `parser`, next to its siblings, and
is read by the command's module):

- `dogesim.cli` (this module): `main`, `_main` (errors to exit statuses), the command table.
- `dogesim.cli.status`: exit statuses and `_UsageError`.
- `dogesim.cli.arguments`: argparse value types and the output-path check `_writable`.
- `dogesim.cli.parser`: `build_parser`, one function per sub-command's arguments.
- `dogesim.cli.feedback`: progress bar/status lines, ledgers, `closing_line`, signals.
- `dogesim.cli.outputs`: ``--out``/``--sink`` sinks and the ``--report`` plot.
- `dogesim.cli.run`: ``run`` in one process and its checks; `dogesim.cli.sharded`: ``--shards``.
- `dogesim.cli.commands`: validate, graph, models, init; `dogesim.cli.eventlog`: report, fit.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TextIO

from dogesim import redact
from dogesim.cli.commands import _cmd_graph, _cmd_init, _cmd_models, _cmd_validate, _resolve_models
from dogesim.cli.eventlog import _cmd_fit, _cmd_report
from dogesim.cli.feedback import STATUS_EVERY_S, _Feedback, _stop_on_signals, closing_line
from dogesim.cli.parser import build_parser
from dogesim.cli.run import _cmd_run
from dogesim.cli.status import EXIT_INTERRUPTED, EXIT_OK, EXIT_SINK, EXIT_USAGE, _UsageError
from dogesim.errors import DogesimError, SinkConfigError, SinkError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SINK",
    "EXIT_USAGE",
    "STATUS_EVERY_S",
    "_Feedback",
    "_stop_on_signals",
    "build_parser",
    "closing_line",
    "main",
]

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
    # Everything the command says passes through the mask: secret ${VAR} values and URL
    # passwords must not reach a terminal or a log. sys.stderr too, for warnings and logging's
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
