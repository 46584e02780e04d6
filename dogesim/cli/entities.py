"""``dogesim run`` of a model file with several entity types (``entities:``).

- `_cmd_run_entities(args, spec, out, err)`: each entity type's run in file order, with the
  progress feedback and summary of a one-model run, stopping at the first that fails.
- `UNSUPPORTED`: the ``run`` flags such a file refuses (its types have one run each).
"""

from __future__ import annotations

import argparse
import time
from typing import Any, TextIO

from dogesim.cli.feedback import _Feedback, _stop_on_signals
from dogesim.cli.status import EXIT_INTERRUPTED, EXIT_OK, _UsageError
from dogesim.errors import SinkConfigError

#: ``run`` flags (argparse names) that a file with several entity types refuses.
UNSUPPORTED = (
    "out",
    "sink",
    "report",
    "resume",
    "checkpoint",
    "live",
    "until_stopped",
    "shards",
)


def _cmd_run_entities(args: argparse.Namespace, spec: Any, out: TextIO, err: TextIO) -> int:
    """Run each entity type of `spec` in turn (exit status)."""
    from dogesim.cli.run import _print_summary, _run_failed

    given = [name for name in UNSUPPORTED if getattr(args, name, None)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise _UsageError(
            f"{spec.path}: {flags} cannot be used with a file of several entity types (each "
            "type runs on its own, into its own sinks)"
        )
    overrides = {
        "callbacks": not args.no_callbacks,
        "jitter": True if args.jitter else None,
        "record_every": args.record_every,
    }
    for name, simulation in spec.simulations(**overrides):
        bar = _Feedback(simulation, err, quiet=args.quiet)
        simulation.progress = bar.update
        started = time.perf_counter()
        with _stop_on_signals(simulation):
            try:
                result = simulation.run()
            except SinkConfigError:
                raise
            except (Exception, KeyboardInterrupt) as exc:
                bar.close()
                print(f"dogesim: entity type {name!r} failed", file=err)
                return _run_failed(args, simulation, exc, out, err)
            finally:
                bar.close()
        if not args.quiet:
            sinks = spec.entities[name]
            destination = ", ".join(sinks.sinks[n].describe() for n in sinks.used_sinks())
            print(f"{name}:", file=out)
            _print_summary(
                simulation, result, time.perf_counter() - started, destination or "none", out
            )
        if result.stopped:
            print(f"dogesim: stopped during entity type {name!r}", file=err)
            return EXIT_INTERRUPTED
    return EXIT_OK
