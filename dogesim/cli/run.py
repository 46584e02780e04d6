"""``dogesim run MODEL.yaml`` in one process: checks, sinks, the run, its summary.

- `_cmd_run(args, out, err)`: the command; hands a sharded run to `dogesim.cli.sharded`.
- `_check_run_arguments(args, spec, sharded=)` (with `_check_checkpoint_arguments` and
  `_check_shard_arguments`) and `_check_outputs(args)`: refuse, before anything runs, flag
  combinations that mean nothing and outputs that cannot be written.
- `_run_sinks`, `_build_simulation`: the sinks and the `Simulation` the flags ask for.
- `_run_failed`, `_print_summary`, `_stopped`: what the command says after the run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path
from typing import Any, TextIO

from dogesim.cli.arguments import _writable
from dogesim.cli.feedback import (
    _Feedback,
    _ledgers,
    _print_ledgers,
    _print_speed,
    _raised_where,
    _stop_on_signals,
    closing_line,
)
from dogesim.cli.outputs import _named_sink, _output_sink, _plot_module, _write_report
from dogesim.cli.sharded import _is_sharded
from dogesim.cli.status import EXIT_INTERRUPTED, EXIT_OK, EXIT_SINK, _UsageError
from dogesim.errors import ModelError, RunError, SinkConfigError, SinkError


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
    sharded = _is_sharded(args, spec)  # a sharded checkpoint is its shards' manifest
    _check_run_arguments(args, spec, sharded=sharded)
    resumed = args.resume is not None and not sharded
    saved = _check_resume_arguments(args, spec) if resumed else None
    _check_outputs(args)
    if args.report:
        _plot_module()  # fail before running when plots cannot be made
    if sharded:
        from dogesim.cli.sharded import _cmd_run_sharded

        return _cmd_run_sharded(args, spec, out, err)
    sinks, destination = _run_sinks(args, spec)
    simulation = _build_simulation(args, spec, sinks)
    if saved is not None and not args.quiet and (notes := _resume_notes(spec, saved)):
        print(f"dogesim: resumed with the checkpoint's {', '.join(notes)}", file=err)
    bar = _Feedback(simulation, err, quiet=args.quiet)
    simulation.progress = bar.update
    started = time.perf_counter()
    with _stop_on_signals(simulation) as received:
        try:
            result = simulation.run()
        except SinkConfigError as exc:
            if bar.done == 0:
                raise  # refused before any tick was done: a usage error (exit 2)
            bar.close()
            return _run_failed(args, simulation, exc, out, err)
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
        from dogesim.modelfile.runs import resume_simulation, saved_checkpoint_every

        # A resumed run goes on checkpointing into its file, as often as the run it
        # continues did (a kill -9 of the resume then loses at most one period).
        every = args.checkpoint_every
        checkpoints = {
            "checkpoint_path": args.checkpoint or args.resume,
            "checkpoint_every": every if every is not None else saved_checkpoint_every(args.resume),
        }

        # The checkpoint is the run: its seed, ticks, jitter, record_every, clock and
        # subjects (the flags were checked against them); the file gives the model.
        return resume_simulation(
            spec,
            args.resume,
            sinks=sinks,
            progress=None,
            callbacks=not args.no_callbacks,
            live=live,
            checkpoints=checkpoints,
            allow_pickle=args.resume_allow_pickle,
            from_checkpoint=True,
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
        print(f"dogesim: events were lost: {exc}", file=err)
        if isinstance(exc, SinkConfigError) and (hint := _live_clock_hint(simulation)):
            print(f"dogesim: {hint}", file=err)
        # The sinks are closed now: their ledgers count what the flush settled.
        ledgers, _ = _ledgers(simulation)
        print("dogesim: after closing the sinks:", file=err)
        for ledger in ledgers or exc.ledgers:
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


def _live_clock_hint(simulation: Any) -> str | None:
    """What to do when a live run faster than real time ran past the broker's clock."""
    speed = getattr(simulation, "speed", 1)
    if not getattr(simulation, "live", False) or speed <= 1:
        return None
    return (
        f"a live run at speed {speed:g} runs its event times ahead of the clock (after "
        "t wall seconds by t x (speed - 1)), past what a Kafka topic accepts (Kafka 4: an "
        "hour, message.timestamp.after.max.ms); give the Kafka sink `record_timestamp: send` "
        "in the model file (record time = send time; the event time stays in the payload), "
        "or run at --speed 1"
    )


def _print_summary(
    simulation: Any, result: Any, wall: float, destination: str, out: TextIO
) -> None:
    """The result's summary, speed, table rows, the sinks' fate and the live lag."""
    before = _events_before(simulation, result)
    if before is None:
        print(result.summary(), file=out)
        _print_speed(result, wall, destination, out)
    else:
        _print_resumed(result, before, wall, destination, out)
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


def _events_before(simulation: Any, result: Any) -> tuple[int, int, int] | None:
    """(tick, events, moves) where a resumed run took over from its checkpoint; None for a
    run from the start. The result counts the whole run; this process made the rest."""
    saved = getattr(simulation, "_restored", None)
    if saved is None:
        return None
    counts = saved["arrays"]["recorder_counts"]
    per_transition = counts.sum(axis=0) if len(counts) else counts.reshape(-1)
    moves = int(per_transition.sum()) if len(per_transition) else 0
    fed = result.fed or tuple(bool(t.event_sinks) for t in result.transitions)
    events = sum(int(n) for n, f in zip(per_transition, fed, strict=False) if f)
    return int(saved["next_tick"]), events, moves


def _print_resumed(
    result: Any, before: tuple[int, int, int], wall: float, destination: str, out: TextIO
) -> None:
    """A resumed run's summary: the whole run's events, then this process's and its rate
    (the result's own first line would divide the whole run's events by this part's time)."""
    tick, events_before, moves_before = before
    lines = result.summary().splitlines()
    events = result.events - events_before
    rate = events / wall if wall > 0 else float("inf")
    print(
        f"seed {result.seed}: {result.subjects} subjects x {result.ticks} ticks of "
        f"{result.tick_ms} ms -> {result.events:,} events over the whole run",
        file=out,
    )
    print("\n".join(lines[1:]), file=out)
    print(
        f"wall time {wall:.3f} s: resumed at tick {tick:,}, this process made {events:,} "
        f"events ({rate:,.0f} events/s), {result.moves - moves_before:,} moves; events -> "
        f"{destination}",
        file=out,
    )


def _stopped(
    args: argparse.Namespace, simulation: Any, result: Any, received: list[str], err: TextIO
) -> int:
    """Report a run stopped by a signal, and save its checkpoint when asked to."""
    cause = received[0] if received else "a stop request"
    done = (
        f"{result.ticks} of {simulation.ticks} ticks"
        if simulation.ticks is not None
        else (f"{result.ticks} tick{'s' if result.ticks != 1 else ''}")
    )
    print(f"dogesim: stopped by {cause} after {done}; {closing_line(simulation)}", file=err)
    if not args.checkpoint:
        return EXIT_INTERRUPTED
    try:
        Path(args.checkpoint).parent.mkdir(parents=True, exist_ok=True)
        simulation.checkpoint(args.checkpoint)
    except (RunError, OSError) as exc:
        print(f"dogesim: the checkpoint was not written: {exc}", file=err)
        return EXIT_SINK
    print(
        f"dogesim: checkpoint -> {args.checkpoint}; continue with: {continue_command(args)}",
        file=err,
    )
    return EXIT_INTERRUPTED


def continue_command(args: argparse.Namespace) -> str:
    """The command that resumes this run as it was run: the model, the checkpoint, where the
    events went and how it was paced (the checkpoint holds seed, ticks, subjects, jitter,
    record_every and the clock, so those flags are left out)."""
    words = ["dogesim", "run", args.model, "--resume", args.checkpoint]
    for flag, value in (
        ("--out", args.out),
        ("--sink", args.sink),
        ("--speed", None if args.speed is None else f"{args.speed:g}"),
        ("--max-lag", None if args.max_lag is None else f"{args.max_lag}ms"),
        ("--on-lag", args.on_lag),
        ("--checkpoint", args.checkpoint),
        ("--checkpoint-every", args.checkpoint_every),
    ):
        if value is not None:
            words += [flag, str(value)]
    for flag, given in (("--live", args.live), ("--no-callbacks", args.no_callbacks)):
        if given:
            words.append(flag)
    return shlex.join(words)


def _check_outputs(args: argparse.Namespace) -> None:
    """Every file `run` will write can be written: checked before the run starts."""
    if args.out:
        _writable("--out", args.out)
    if args.report:
        _writable("--report", args.report, plot=True)
    if args.checkpoint:
        _writable("--checkpoint", args.checkpoint)


def _check_run_arguments(args: argparse.Namespace, spec: Any, *, sharded: bool) -> None:
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
    _check_not_a_shards_checkpoint(args)
    if sharded:
        _check_shard_arguments(args, spec)
    elif args.workers is not None or args.dask is not None:
        flag = "--workers" if args.workers is not None else "--dask"
        raise _UsageError(
            f"dogesim run: {flag} runs shards; add --shards S (or `shards: S` in the model file)"
        )
    if args.checkpoint:
        _check_csv_sinks(args, spec, sharded=sharded)
    if args.checkpoint or args.resume:
        _check_resumable_payloads(args, spec)


def _check_resumable_payloads(args: argparse.Namespace, spec: Any) -> None:
    """Refuse a checkpoint of payloads whose state a checkpoint does not keep (before the
    run: a long run must not find out at its resume)."""
    from dogesim.modelfile.payloads import restart_on_resume

    what = restart_on_resume(spec, _fed_sinks(args, spec))
    if what is not None:
        raise _UsageError(
            f"dogesim run: --checkpoint/--resume: {what}, whose sequence numbers, Faker "
            "values and fault draws a checkpoint does not keep (a resume would start them "
            "again and differ from the uninterrupted run); run it without a checkpoint"
        )


def _check_resume_arguments(args: argparse.Namespace, spec: Any) -> dict[str, Any] | None:
    """A resumed run is the checkpoint's: a flag equal to the checkpoint's value is accepted,
    a different one refused naming both (and a path that is not a checkpoint file, before
    any output is opened). The saved settings."""
    from dogesim.modelfile.runs import saved_run

    if not Path(args.resume).is_file():
        what = "a directory, not a" if os.path.isdir(args.resume) else "no such"
        raise _UsageError(f"dogesim run: {args.resume}: {what} checkpoint file")
    saved = saved_run(args.resume)
    for name, flag, given in _resume_flags(args, spec):
        if given is not _NOT_GIVEN and given != saved[name]:
            raise _UsageError(
                f"dogesim run: {flag} cannot change a resumed run: {args.resume} was run with "
                f"{_described(name, saved[name])} (the checkpoint fixes subjects, ticks, seed, "
                "jitter and record_every; leave the flag out to take its value)"
            )
    if saved["ticks"] is None and not (args.live or spec.live.enabled):
        raise _UsageError(
            f"dogesim run: {args.resume} was saved from a live run until stopped; resume it "
            "with --live (and its --speed)"
        )
    return saved


#: A flag that was not given (None is a checkpoint's value: ticks of a run until stopped).
_NOT_GIVEN: Any = object()


def _resume_flags(args: argparse.Namespace, spec: Any) -> list[tuple[str, str, Any]]:
    """(the setting, the flag as given, its value in the checkpoint's terms or _NOT_GIVEN)."""

    def given(value: Any) -> Any:
        return _NOT_GIVEN if value is None else value

    every = args.record_every
    if isinstance(every, str):
        from dogesim.modelfile import parse_duration

        every = parse_duration(every, "--record-every") / spec.tick_ms
    return [
        ("subjects", f"--subjects {args.subjects}", given(args.subjects)),
        ("ticks", f"--ticks {args.ticks}", given(args.ticks)),
        ("ticks", "--until-stopped", None if args.until_stopped else _NOT_GIVEN),
        ("seed", f"--seed {args.seed}", given(args.seed)),
        ("jitter", "--jitter", True if args.jitter else _NOT_GIVEN),
        ("record_every", f"--record-every {args.record_every}", given(every)),
    ]


def _described(name: str, value: Any) -> str:
    """A saved run setting in words: ``1,440 ticks``, ``ticks until stopped``, ``seed 7``."""
    if name == "ticks":
        return "ticks until stopped" if value is None else f"{value:,} ticks"
    if name == "jitter":
        return "jitter on" if value else "jitter off"
    if name == "subjects":
        return f"{value:,} subjects"
    return f"{name} {value}"


def _resume_notes(spec: Any, saved: dict[str, Any]) -> list[str]:
    """Where the model file's own run settings differ from the checkpoint's (which win)."""
    notes = []
    for name, mine in (
        ("subjects", spec.subjects.count),
        ("ticks", spec.ticks),
        ("seed", spec.seed),
        ("jitter", spec.jitter),
        ("record_every", spec.record_every),
    ):
        kept = saved[name]
        if mine is not None and mine != kept and not (name == "ticks" and kept is None):
            notes.append(f"{_described(name, kept)} (the file: {_described(name, mine)})")
    return notes


def _check_checkpoint_arguments(args: argparse.Namespace) -> None:
    """--checkpoint-every needs a file to write to, --resume-allow-pickle a --resume."""
    if args.checkpoint_every is not None and not (args.checkpoint or args.resume):
        raise _UsageError(
            "dogesim run: --checkpoint-every needs --checkpoint FILE (or `checkpoint: {path: "
            "FILE}` in the model file, or --resume FILE), the file the checkpoints are "
            "written to"
        )
    if args.resume_allow_pickle and args.resume is None:
        raise _UsageError("dogesim run: --resume-allow-pickle applies to --resume FILE only")


def _fed_sinks(args: argparse.Namespace, spec: Any) -> list[str]:
    """The model file's sinks this command line's events go to (none with --out; the one
    --sink names, when it names one of the file's)."""
    if args.out:
        return []
    names = [args.sink] if args.sink else spec.used_sinks()
    return [name for name in names if name in spec.sinks]


def _check_not_a_shards_checkpoint(args: argparse.Namespace) -> None:
    """--resume of one shard's checkpoint (``BASE.shard-K`` beside a sharded run's manifest)
    is refused: run alone it would continue that shard as a run of its own, with the shard's
    seed and subjects, and write its rows again."""
    import re

    from dogesim.shards import read_manifest

    if args.resume is None:
        return
    match = re.fullmatch(r"(.+)\.shard-\d+", str(args.resume))
    if match and read_manifest(match.group(1)) is not None:
        raise _UsageError(
            f"dogesim run: {args.resume} is one shard's checkpoint of the sharded run "
            f"checkpointed at {match.group(1)}; resume the whole run with --resume "
            f"{match.group(1)}"
        )


def _check_csv_sinks(args: argparse.Namespace, spec: Any, *, sharded: bool) -> None:
    """A checkpointed run whose events go to a model file's CSV sink is refused before it
    starts: such a sink cannot be continued by --resume (``--out FILE.csv`` of one process
    can; a sharded run's CSV parts cannot)."""
    elsewhere = "" if sharded else ", or send the events to --out FILE.csv (continued)"
    for name in _fed_sinks(args, spec):
        if spec.sinks[name].type == "csv":
            raise _UsageError(
                f"dogesim run: --checkpoint: sink {name!r} of the model file is a csv sink, "
                f"which a resumed run cannot continue; give it type jsonl{elsewhere}"
            )


def _is_csv(path: str) -> bool:
    from dogesim.sinks.compression import log_format

    return log_format(path) == "csv"


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
        # The file's own sinks are built by each shard from the file, callbacks included.
        ("--no-callbacks without --out", args.no_callbacks and not args.out),
    ):
        if given:
            raise _UsageError(
                f"dogesim run: {flag} cannot be used with shards (--shards or the file's "
                "`shards:`); run it in one process"
            )
    if args.checkpoint and args.out and _is_csv(args.out):
        raise _UsageError(
            f"dogesim run: --out {args.out} with --checkpoint: the shards' CSV parts cannot be "
            "continued from a checkpoint (each has its header); give --out FILE.jsonl, or run "
            "in one process"
        )
    if args.resume and args.checkpoint and Path(args.resume) != Path(args.checkpoint):
        raise _UsageError(
            "dogesim run: a sharded run resumes and checkpoints at one path: give --resume "
            f"{args.resume} without --checkpoint {args.checkpoint}"
        )
    shards = args.shards if args.shards is not None else spec.shards
    if shards is not None:
        from dogesim.scale.plan import refuse_shared_resources

        try:
            where = f"dogesim run: {spec.path or spec.name}"
            refuse_shared_resources(spec.resources, shards, where, advice="run it with --shards 1")
        except ModelError as exc:
            raise _UsageError(str(exc)) from None
