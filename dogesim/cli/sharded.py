"""``dogesim run --shards S [--workers N | --dask ADDRESS]``: the sharded path of ``run``.

- `_cmd_run_sharded(args, spec, out, err)`: run the shards with one progress bar (status
  lines off a terminal), merge, summarise; the first SIGINT/SIGTERM stops every shard after
  its tick (exit 130, every shard's ledger printed), a second one at once.
- `_is_sharded(args, spec)`: whether the command line runs shards (``--shards``, the file's
  ``shards:``, or ``--resume`` of a sharded run's checkpoint).
- `_sharded_run(args, spec)`: the `dogesim.shards.ShardedRun` of the command line (for
  --resume with the settings of the run it continues: `_run_settings`).
- `_ShardFeedback`: progress summed over the shards, on stderr.
- `_OutModel`, `_FileSubjects`: picklable builders of one shard's model (every event to
  its part of ``--out``) and subjects, for local processes and Dask workers.

With ``--checkpoint PATH`` each shard writes its own checkpoint (``PATH.shard-K``; PATH holds
the run's manifest) when it stops or ends, and every ``--checkpoint-every``; a stopped run
keeps its part files, and ``--resume PATH`` continues every shard from its own checkpoint:
the merged file is then the uninterrupted run's, byte for byte. ``--live`` paces every shard
from one clock start; file outputs are merged when the run ends or is stopped.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from dogesim.cli.feedback import STATUS_EVERY_S, _isatty, _print_speed, _stop_on_signals
from dogesim.cli.outputs import _write_report
from dogesim.cli.status import EXIT_INTERRUPTED, EXIT_OK, EXIT_SINK, _UsageError
from dogesim.errors import ModelError, RunError, SinkConfigError, SinkError


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
        from dogesim.report.parquet_reader import is_parquet
        from dogesim.sinks.compression import log_format

        spec = load_model_file(self.path, ticks=self.ticks)
        if is_parquet(self.out):
            sink = shard.parquet(self.out)
        elif log_format(self.out) == "csv":
            sink = shard.csv(self.out)
        else:
            sink = shard.jsonl(self.out)
        model = spec.build_model([sink], callbacks=self.callbacks)
        return (model, [sink]) if spec.churn is not None else model


class _FileSubjects:
    """The model file's subjects for one shard: the file's factory made from the shard's
    seed, exactly as a sharded run into the file's own sinks makes them
    (`dogesim.scale.modelfiles.load_for_shard`), so ``--out`` changes where events go,
    never which subjects there are."""

    def __init__(self, path: str) -> None:
        self.path = path

    def for_shard(self, shard: Any) -> Callable[[], Any]:
        from dogesim.modelfile import load_model_file

        return load_model_file(self.path).subject_factory(shard.seed)


def _is_sharded(args: argparse.Namespace, spec: Any) -> bool:
    """True when the command line runs shards: --shards, the file's ``shards:``, or a
    --resume of a sharded run's checkpoint (its manifest)."""
    if args.shards is not None or spec.shards is not None:
        return True
    if args.resume is None:
        return False
    from dogesim.shards import read_manifest

    return read_manifest(args.resume) is not None


def _live(args: argparse.Namespace, spec: Any) -> Any:
    """The `LiveOptions` of the flags and the file's ``live:`` (None: not live)."""
    from dogesim.engine import LiveOptions

    settings = spec.live_settings(
        live=True if args.live else None,
        speed=args.speed,
        max_lag_ms=args.max_lag,
        on_lag=args.on_lag,
    )
    if not settings.enabled:
        return None
    return LiveOptions(True, settings.speed, settings.max_lag_ms, settings.on_lag)


def _run_settings(args: argparse.Namespace, spec: Any) -> dict[str, Any]:
    """The subjects, ticks, seed and jitter of the run: the flags' and the file's, or for
    --resume the checkpointed run's (its manifest: the flags it was started with included).

    A flag given to a resume must equal the checkpointed run's value (refused, exit 2,
    naming both); a manifest older than these settings leaves the flag's, else the file's."""
    own = {
        "subjects": spec.subjects.count,
        "ticks": spec.ticks,
        "seed": spec.seed,
        "jitter": bool(spec.jitter or args.jitter),
    }
    if args.resume is None:
        return own  # the file was loaded with --subjects, --ticks and --seed
    from dogesim.shards import read_manifest

    manifest = read_manifest(args.resume) or {}
    given = {
        "subjects": args.subjects,
        "ticks": args.ticks,
        "seed": args.seed,
        "jitter": True if args.jitter else None,
    }
    settings: dict[str, Any] = {}
    for name, value in given.items():
        if name not in manifest:
            settings[name] = own[name] if value is None else value
        elif value is None or value == manifest[name]:
            settings[name] = manifest[name]
        else:
            flag = "--jitter" if name == "jitter" else f"--{name} {value}"
            raise _UsageError(
                f"dogesim run: {flag} cannot change a resumed sharded run: {args.resume} was "
                f"run with {_setting(name, manifest[name])} (leave the flag out to take its "
                "value)"
            )
    return settings


def _setting(name: str, value: Any) -> str:
    """A run setting in words: ``300 ticks``, ``seed 7``, ``jitter off``."""
    if name == "jitter":
        return "jitter on" if value else "jitter off"
    if name in ("ticks", "subjects") and isinstance(value, int):
        return f"{value:,} {name}"
    return f"{name} {value}"


def _sharded_run(args: argparse.Namespace, spec: Any) -> Any:
    """The `ShardedRun` of this command line: the file's sinks, or every event to --out."""
    from dogesim.shards import ShardedRun

    path = os.path.abspath(spec.path)
    shards = args.shards if args.shards is not None else spec.shards
    settings = _run_settings(args, spec)
    base = args.resume or args.checkpoint
    control: dict[str, Any] = {
        "checkpoint": os.path.abspath(base) if base else None,
        "checkpoint_every": args.checkpoint_every,
        "resume": args.resume is not None,
        "live": _live(args, spec),
        "allow_pickle": bool(args.resume_allow_pickle),
    }
    if not args.out:
        return ShardedRun(
            path,
            subjects=settings["subjects"],
            ticks=settings["ticks"],
            seed=settings["seed"],
            shards=shards,
            jitter=settings["jitter"],
            **control,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    ticks = settings["ticks"]
    return ShardedRun(
        _OutModel(path, os.path.abspath(args.out), ticks, callbacks=not args.no_callbacks),
        subjects=settings["subjects"],
        subject_factory=_FileSubjects(path),
        ticks=ticks,
        tick_ms=spec.tick_ms,
        # A resume takes the clock start of the run it continues (its manifest).
        timestamp_start=None if args.resume else spec.timestamp_start,
        seed=settings["seed"],
        shards=shards,
        arrivals=spec.arrivals,
        arrivals_profile=spec.arrivals_profile,
        churn=spec.churn,
        jitter=settings["jitter"],
        **control,
    )


class _ShardFeedback:
    """Progress of a sharded run on stderr, summed over its shards (`dogesim.shards.Progress`):
    on a terminal a tqdm bar of ticks, its postfix the shards done (and failed or stopped)
    and the events; elsewhere one status line every `every` seconds and one when every shard
    has finished (the run's exact events); nothing when quiet.

    The bar is made at the first report, after local workers were started: a fork of the
    driver must not happen beside the bar's monitor thread."""

    def __init__(
        self, stream: TextIO, *, quiet: bool, tty: bool | None = None, every: float = STATUS_EVERY_S
    ) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = _isatty(stream) if tty is None else tty
        self.every = every
        self.started = time.monotonic()
        self.next_status = self.started + every
        self.bar: Any = None
        self.last: Any = None

    def update(self, progress: Any) -> None:
        """Show `progress` (called by `run_sharded` when it changed)."""
        self.last = progress
        if self.quiet:
            return
        if self.tty:
            self._bar(progress)
            return
        now = time.monotonic()
        if now >= self.next_status or progress.finished == progress.shards:
            self.next_status = now + self.every
            print(f"dogesim: {self.line(progress, now)}", file=self.stream, flush=True)

    def _bar(self, progress: Any) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=progress.total_ticks,
                unit="tick",
                file=self.stream,
                delay=1.0,
                mininterval=0.25,
                leave=False,
                dynamic_ncols=True,
            )
        self.bar.update(max(progress.ticks - self.bar.n, 0))
        self.bar.set_postfix_str(f"{_shards(progress)}, {progress.events:,} events", refresh=False)

    def line(self, progress: Any, now: float | None = None) -> str:
        """``2/4 shards done, tick 1,200/2,400 (50%) over the shards, 3,476 events (R/s)``
        (``1/4 shards done, 1 failed, ...`` once a shard failed)."""
        elapsed = max((time.monotonic() if now is None else now) - self.started, 1e-9)
        ticks = f"tick {progress.ticks:,}"
        if progress.total_ticks:
            share = 100 * progress.ticks // progress.total_ticks
            ticks += f"/{progress.total_ticks:,} ({share}%)"
        return (
            f"{_shards(progress)}, {ticks} over the shards, "
            f"{progress.events:,} events ({progress.events / elapsed:,.0f}/s)"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _shards(progress: Any) -> str:
    """``1/4 shards done``, then the failed and the stopped shards when there are any: a
    shard that failed or stopped has finished but is not done."""
    text = f"{progress.done}/{progress.shards} shards done"
    if progress.failed:
        text += f", {progress.failed} failed"
    if progress.stopped:
        text += f", {progress.stopped} stopped"
    return text


class _Stop:
    """What `_stop_on_signals` stops: the run's stop event, which every shard polls. Once
    every shard has finished (the driver merges their parts: nothing is left to stop) it
    says so on `err`."""

    def __init__(self, feedback: _ShardFeedback, err: TextIO, checkpoint: str | None) -> None:
        self.event = threading.Event()
        self.feedback = feedback
        self.err = err
        self.checkpoint = checkpoint
        self.received: list[str] = []

    def stop(self) -> None:
        self.event.set()
        last = self.feedback.last
        if last is None or last.finished < last.shards or last.failed:
            return
        if last.stopped and self.checkpoint:
            return  # a stopped checkpointed run keeps its parts: no merge
        cause = self.received[0] if self.received else "a stop request"
        kept = (
            f"the part files and checkpoints stay for --resume {self.checkpoint}"
            if self.checkpoint
            else "their part files are removed"
        )
        print(
            f"dogesim: {cause}: every shard has finished; merging their part files into the "
            f"merged outputs. Ctrl-C again to abort the merge (nothing is merged, {kept})",
            file=self.err,
            flush=True,
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
    feedback = _ShardFeedback(err, quiet=args.quiet)
    stop = _Stop(feedback, err, run.checkpoint)
    started = time.perf_counter()
    with _stop_on_signals(stop) as received:
        stop.received = received
        try:
            result = run_sharded(
                run, workers=args.workers, dask=args.dask, progress=feedback.update, stop=stop.event
            )
        except (ModelError, SinkConfigError) as exc:
            # A bad model, or a sink no shard could set up: nothing was sent (exit 2).
            feedback.close()
            raise _UsageError(f"dogesim run: {' '.join(str(exc).split())}") from None
        except (SinkError, RunError) as exc:
            feedback.close()
            if received and not isinstance(exc, SinkError):
                print(f"dogesim: stopped by {received[0]}: {exc}", file=err)
                return EXIT_INTERRUPTED  # e.g. stopped before any shard started
            print(f"dogesim: the sharded run failed: {exc}", file=err)
            return EXIT_SINK
        except KeyboardInterrupt:
            feedback.close()
            return _interrupted(run, err)
        finally:
            feedback.close()
    wall = time.perf_counter() - started
    if not args.quiet:
        print(result.summary(), file=out)
        _print_speed(result, wall, destination, out)
    if result.stopped:
        return _stopped_shards(args, run, result, received, err)
    _write_report(args, spec, result, out)
    return EXIT_OK


def _interrupted(run: Any, err: TextIO) -> int:
    """A second signal: every shard was cancelled and closed its sinks; nothing merged."""
    kept = (
        f"part files and checkpoints kept: resume with --resume {run.checkpoint}"
        if run.checkpoint
        else "their part files were removed"
    )
    print(
        "dogesim: interrupted; every shard was cancelled and closed its sinks, no merged file "
        f"was written ({kept})",
        file=err,
    )
    return EXIT_INTERRUPTED


def _stopped_shards(
    args: argparse.Namespace, run: Any, result: Any, received: list[str], err: TextIO
) -> int:
    """Report a sharded run stopped by a signal: every shard's ticks and ledgers, the
    merged outputs, and how to continue when it was checkpointed."""
    cause = received[0] if received else "a stop request"
    print(f"dogesim: stopped by {cause}; every shard stopped after its tick. Per shard:", file=err)
    for shard in result.shard_results:
        ticks = shard.result.ticks if shard.result is not None else 0
        print(f"  {shard.describe()} (after tick {ticks} of {run.ticks})", file=err)
    if result.parts_kept:
        print(
            "dogesim: part files and checkpoints kept (the merged file is written when the "
            f"resumed run ends); continue with: dogesim run {args.model} --resume "
            f"{run.checkpoint}" + (f" --out {args.out}" if args.out else ""),
            file=err,
        )
    else:
        for ledger in result.ledgers:
            print(f"  merged {ledger.summary()}", file=err)
    return EXIT_INTERRUPTED
