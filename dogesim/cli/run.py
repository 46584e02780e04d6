"""``dogesim run MODEL.yaml`` in one process: checks, sinks, the run, its summary.

- `_cmd_run(args, out, err)`: the command; hands a sharded run to `dogesim.cli.sharded`.
- `_check_run_arguments(args, spec)` (with `_check_checkpoint_arguments` and
  `_check_shard_arguments`) and `_check_outputs(args)`: refuse, before anything runs, flag
  combinations that mean nothing and outputs that cannot be written.
- `_run_sinks`, `_build_simulation`: the sinks and the `Simulation` the flags ask for.
- `_run_failed`, `_print_summary`, `_stopped`: what the command says after the run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, TextIO

from dogesim.cli.arguments import _writable
from dogesim.cli.feedback import (
    _Feedback,
    _print_ledgers,
    _print_speed,
    _raised_where,
    _stop_on_signals,
    closing_line,
)
from dogesim.cli.outputs import _named_sink, _output_sink, _plot_module, _write_report
from dogesim.cli.sharded import _is_sharded
from dogesim.cli.status import EXIT_INTERRUPTED, EXIT_OK, EXIT_SINK, _UsageError
from dogesim.errors import RunError, SinkConfigError, SinkError


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`dogesim run`: load, check, run with feedback, summarise (exit status)."""
    from dogesim.modelfile import load_model_file

    if args.resume is not None:
        spec = load_model_file(args.model)
    else:
        spec = load_model_file(args.model, subjects=args.subjects, ticks=args.ticks, seed=args.seed)
    if hasattr(spec, "entities"):
        from dogesim.cli.entities import _cmd_run_entities

        return _cmd_run_entities(args, spec, out, err)
    if not args.checkpoint and spec.checkpoint_path is not None:
        args.checkpoint = spec.checkpoint_path
    _check_run_arguments(args, spec)
    _check_outputs(args)
    if args.report:
        _plot_module()  # fail before running when plots cannot be made
    if _is_sharded(args, spec):
        from dogesim.cli.sharded import _cmd_run_sharded

        return _cmd_run_sharded(args, spec, out, err)
    sinks, destination = _run_sinks(args, spec)
    simulation = _build_simulation(args, spec, sinks)
    bar = _Feedback(simulation, err, quiet=args.quiet)
    simulation.progress = bar.update
    started = time.perf_counter()
    with _stop_on_signals(simulation) as received:
        try:
            result = simulation.run()
        except SinkConfigError:
            raise
        except (Exception, KeyboardInterrupt) as exc:
            bar.close()  # before anything is printed on stderr
            return _run_failed(args, simulation, exc, out, err)
        finally:
            bar.close()
    wall = time.perf_counter() - started
    if not args.quiet:
        _print_summary(simulation, result, wall, destination, out)
    if result.stopped:
        return _stopped(args, simulation, result, received, err)
    _write_report(args, spec, result, out)
    return EXIT_OK


def _run_sinks(args: argparse.Namespace, spec: Any) -> tuple[Any, str]:
    """The sinks of --out or --sink (None: the model file's), and where events go, in words."""
    append = args.resume is not None
    if args.out:
        return [_output_sink(args.out, append=append)], args.out
    if args.sink:
        return [_named_sink(spec, args.sink, append=append)], f"sink {args.sink}"
    names = spec.used_sinks()
    return None, ", ".join(spec.sinks[n].describe() for n in names) or "no sinks"


def _build_simulation(args: argparse.Namespace, spec: Any, sinks: Any) -> Any:
    """The `Simulation` of the flags: resumed from --resume, or a new one."""
    live = {
        "live": True if args.live else None,
        "speed": args.speed,
        "max_lag_ms": args.max_lag,
        "on_lag": args.on_lag,
    }
    checkpoints = {"checkpoint_path": args.checkpoint, "checkpoint_every": args.checkpoint_every}
    if args.resume is not None:
        return spec.resume(
            args.resume,
            sinks=sinks,
            callbacks=not args.no_callbacks,
            allow_pickle=args.resume_allow_pickle,
            **checkpoints,
            **live,
        )
    return spec.simulation(
        sinks=sinks,
        callbacks=not args.no_callbacks,
        jitter=True if args.jitter else None,
        record_every=args.record_every,
        until_stopped=True if args.until_stopped else None,
        **checkpoints,
        **live,
    )


def _run_failed(
    args: argparse.Namespace, simulation: Any, exc: BaseException, out: TextIO, err: TextIO
) -> int:
    """Say why the run stopped early and what was delivered; the exit status."""
    if isinstance(exc, SinkError):
        if simulation.result is not None and not args.quiet:
            print(simulation.result.summary(), file=out)
        ledgers = exc.ledgers or (simulation.result.ledgers if simulation.result else [])
        print(f"dogesim: events were lost: {exc}", file=err)
        for ledger in ledgers:
            print(f"  sink {ledger.summary()}", file=err)
        return EXIT_SINK
    if isinstance(exc, RunError):
        print(f"dogesim: the run failed: {' '.join(str(exc).split())}", file=err)
        _print_ledgers(simulation, err)
        return EXIT_SINK
    if isinstance(exc, KeyboardInterrupt):
        # A second signal, or ^C raised by a callback: the engine closed every sink.
        print(f"dogesim: interrupted; {closing_line(simulation)}", file=err)
        _print_ledgers(simulation, err)
        return EXIT_INTERRUPTED
    # A callback, factory or mapper of the model raised: the run stopped there and the
    # engine closed every sink; say where, and what was delivered.
    print(f"dogesim: the run failed: {_raised_where(exc)}", file=err)
    _print_ledgers(simulation, err)
    return EXIT_SINK


def _print_summary(
    simulation: Any, result: Any, wall: float, destination: str, out: TextIO
) -> None:
    """The result's summary, speed, table rows, the sinks' fate and the live lag."""
    print(result.summary(), file=out)
    _print_speed(result, wall, destination, out)
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
    if _is_sharded(args, spec):
        _check_shard_arguments(args, spec)
    elif args.workers is not None or args.dask is not None:
        flag = "--workers" if args.workers is not None else "--dask"
        raise _UsageError(
            f"dogesim run: {flag} runs shards; add --shards S (or `shards: S` in the model file)"
        )
    if args.resume is not None:
        _check_resume_arguments(args)


def _check_resume_arguments(args: argparse.Namespace) -> None:
    """A resumed run keeps what its checkpoint fixed."""
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
        (
            "--until-stopped",
            args.until_stopped or (spec.live.until_stopped and (args.live or spec.live.enabled)),
        ),
        ("--record-every", args.record_every is not None),
        ("--sink", args.sink is not None),
        ("--out -", args.out == "-"),
        ("--out FILE.parquet", bool(args.out) and args.out.lower().endswith(".parquet")),
        # The file's own sinks are built by each shard from the file, callbacks included.
        ("--no-callbacks without --out", args.no_callbacks and not args.out),
    ):
        if given:
            raise _UsageError(
                f"dogesim run: {flag} cannot be used with shards (--shards or the file's "
                "`shards:`); run it in one process"
            )
    if args.resume and args.checkpoint and Path(args.resume) != Path(args.checkpoint):
        raise _UsageError(
            "dogesim run: a sharded run resumes and checkpoints at one path: give --resume "
            f"{args.resume} without --checkpoint {args.checkpoint}"
        )
    shards = args.shards if args.shards is not None else spec.shards
    if shards is not None and shards > 1 and spec.resources:
        raise _UsageError(
            f"dogesim run: {spec.path or spec.name}: its subjects share the resources "
            f"{sorted(spec.resources)}, so they cannot be cut into {shards} shards (a queue "
            "cannot span processes); run it with --shards 1"
        )
