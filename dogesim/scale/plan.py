"""What a sharded run is, and what each shard of it gets.

- `ShardedRun`: a run to cut into shards: a model (a picklable callable that builds it with
  fresh sinks for one shard, or a model-file path), the population, ticks and seed.
- `ShardPlan`: the resolved run every shard receives: the seed, the number of shards, the
  population, an id for the run and its `Control`.
- `Shard`: what a model-building callable is given: the shard's index, seed and subject
  numbering, and `Shard.jsonl` / `Shard.csv` / `Shard.parquet` / `Shard.merged` for outputs
  merged across shards.
- `default_shards(subjects)`: the number of shards when the run gives none.
- `refuse_shared_resources(resources, shards, where)`: the one refusal of a model whose
  subjects share resources, for shards > 1.
- `shard_checkpoint(base, k)`: where shard `k` of a checkpointed run keeps its checkpoint.
- `shard_seeds(seed, shards)`: one integer seed per shard, from
  ``numpy.random.SeedSequence(seed).spawn(shards)``.
- `share_arrivals(arrivals, shards)`: one shard's share of the arrival rate.
- `shard_subjects(factory, shard, renumber)`: the per-subject factory of one shard.

Subjects are striped: shard ``k`` of ``S`` holds the global subject indices ``k, k + S,
k + 2S, ...`` (its initial subjects, then its newcomers), so ids stay unique whatever the
arrivals, and without arrivals the population is ``0 .. n-1`` exactly.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from numbers import Real
from types import SimpleNamespace
from typing import Any

import numpy as np

from dogesim.engine.options import LiveOptions
from dogesim.errors import ModelError
from dogesim.model import Model
from dogesim.rates import Profile, Rate, parse_rate
from dogesim.scale.control import Control
from dogesim.scale.parts import PartFile, PartSink, part_path
from dogesim.sinks.base import CountingSink
from dogesim.sinks.compression import compression_of, member_compressor

__all__ = [
    "RENUMBERED",
    "Shard",
    "ShardPlan",
    "ShardedRun",
    "default_shards",
    "refuse_shared_resources",
    "shard_checkpoint",
    "shard_seeds",
    "shard_subjects",
    "share_arrivals",
]

#: Subject attributes that hold a counter id and are renumbered to the global numbering.
RENUMBERED = ("id", "user_id", "subject_id")

#: A model-building callable: ``build(shard) -> Model`` or ``(Model, churn_sinks)``.
ModelBuilder = Callable[["Shard"], "Model | tuple[Model, Sequence[Any]]"]


def shard_checkpoint(base: str, shard: int) -> str:
    """Where shard `shard` of a run checkpointed at `base` keeps its checkpoint."""
    return f"{base}.shard-{shard}"


def refuse_shared_resources(
    resources: Sequence[str] | Mapping[str, Any],
    shards: int,
    where: str,
    *,
    advice: str = "run it with shards=1",
) -> None:
    """Refuse `shards` > 1 for a model whose subjects share `resources` (a queue cannot
    span processes), naming `where` and the resources.

    Raises:
        ModelError: the model has resources and more than one shard is asked for.
    """
    names = sorted(resources)
    if names and shards > 1:
        raise ModelError(
            f"{where}: its subjects share the resources {names}, so they cannot be cut into "
            f"{shards} shards (a queue cannot span processes); {advice}"
        )


def default_shards(subjects: int) -> int:
    """The number of shards of a run of `subjects` that gives none.

    One below 20,000 subjects; else 8 per started million, at most 64. It depends on the
    population only, never on the workers, so a seeded run without ``shards=`` gives the same
    stream on any machine.
    """
    if subjects < 20_000:
        return 1
    return min(64, 8 * math.ceil(subjects / 1_000_000))


def shard_seeds(seed: int, shards: int) -> list[int]:
    """Per shard, a 63-bit seed drawn from ``SeedSequence(seed).spawn(shards)[k]``; it seeds
    the shard's `Simulation` (its engine stream) and its global `random`."""
    children = np.random.SeedSequence(seed).spawn(shards)
    return [int(child.generate_state(1, np.uint64)[0]) >> 1 for child in children]


def share_arrivals(arrivals: float | Rate | str | None, shards: int) -> float | Rate | None:
    """One shard's share of `arrivals`: the rate divided by `shards`.

    The superposition of `shards` independent Poisson streams of rate ``r / shards`` is a
    Poisson stream of rate ``r``, so the run's arrivals keep their law exactly.
    """
    if arrivals is None:
        return None
    if isinstance(arrivals, str):
        arrivals = parse_rate(arrivals, "arrivals")
    if isinstance(arrivals, Rate):
        return replace(arrivals, value=arrivals.value / shards)
    if isinstance(arrivals, bool) or not isinstance(arrivals, Real) or not 0 <= arrivals < math.inf:
        raise ModelError(f"arrivals must be a number of subjects per tick >= 0, got {arrivals!r}")
    return float(arrivals) / shards


@dataclass(frozen=True)
class ShardedRun:
    """A run to cut into shards of subjects.

    Args:
        model: a picklable callable ``build(shard: Shard) -> Model`` (or ``(Model,
            churn_sinks)``) that builds the model with fresh sinks for one shard (use
            `Shard.jsonl` / `Shard.csv` / `Shard.parquet` for files merged across shards),
            or the path of a model file (its file sinks are merged, its other sinks built
            once per shard).
        subjects: the population (a model file's count when None).
        subject_factory: a picklable factory as `Simulation` takes; a factory class (one
            with ``create()``, like doge-datagen's `SubjectFactory`) is instantiated once per
            shard, a factory object is copied per shard, other callables (functions, subject
            classes) are called once per subject. Each shard seeds the global
            `random` with its seed and then calls its factory once per subject, in order; an
            int ``id``/``user_id``/``subject_id`` counted by the factory is renumbered to the
            global index (see `shard_subjects`). Without one, subjects are
            ``SimpleNamespace(id=<global index>)``.
        ticks, tick_ms, timestamp_start, seed_globals, arrivals, arrivals_profile, churn,
            jitter: as in `Simulation` (a model file's own when None).
        seed: the run's seed; the stream is a function of (model, seed, shards) only.
        shards: how many shards (when None: a model file's ``shards:`` if its loader reads
            one, else `default_shards` of the population).
        environ: the variables a model file's ``${...}`` read (default: the driver's
            environment, so every worker reads the file alike).
        renumber: subject attributes renumbered to global ids (() turns it off).
        checkpoint: the base path of the run's checkpoints: shard ``k`` writes
            `shard_checkpoint` ``(checkpoint, k)`` when it ends or stops (and every
            `checkpoint_every` when given); the base path itself holds the run's manifest
            (every setting that decides the stream: seed, shards, population, ticks, tick,
            clock start, jitter, arrivals, churn). A model file's ``checkpoint.path`` when None.
        checkpoint_every: also checkpoint each shard every so many ticks (or a duration).
        resume: continue the run saved at `checkpoint`: each shard from its own checkpoint
            (a shard without one starts afresh), part files cut back to their checkpoints;
            the merged output equals the uninterrupted run's byte for byte. Settings left
            None (seed, shards, subjects, ticks, clock start, jitter) are the manifest's; one
            that differs from it is refused, and so is a shard's checkpoint of another model
            or other settings, before any shard starts.
        live: pace every shard in real time (a `LiveOptions`); all shards share one clock
            start (`timestamp_start`, now when None), and merged files are written when the
            run ends or is stopped.
        allow_pickle: checkpoints may store subjects that are not data as a pickle, and a
            resume may load them (that runs code from the files: only for files you trust).
    """

    model: ModelBuilder | str | os.PathLike[str]
    subjects: int | None = None
    subject_factory: Any = None
    ticks: int | None = None
    tick_ms: int | None = None
    timestamp_start: int | None = None
    seed: int | None = None
    shards: int | None = None
    seed_globals: bool = True
    arrivals: float | Rate | str | None = None
    arrivals_profile: Profile | None = None
    churn: float | Rate | str | None = None
    jitter: bool | None = None
    environ: Mapping[str, str] | None = None
    renumber: tuple[str, ...] = RENUMBERED
    checkpoint: str | None = None
    checkpoint_every: int | str | None = None
    resume: bool = False
    live: LiveOptions | None = None
    allow_pickle: bool = False

    @property
    def model_file(self) -> str | None:
        """The model file's path, or None when `model` is a callable."""
        if isinstance(self.model, (str, os.PathLike)):
            return os.fspath(self.model)
        return None


@dataclass(frozen=True)
class ShardPlan:
    """A `ShardedRun` resolved in the driver: what every shard receives.

    Attributes:
        run: the run, with its seed, population and (for model files) tick settings filled in.
        seed: the run's seed.
        shards: the number of shards.
        subjects: the initial population of the whole run.
        seeds: per shard, its seed (`shard_seeds`).
        run_id: a name for this run (part files, Dask keys and events).
        control: cancellation and run-once claims shared by the shards.
        outputs: model files: per file sink name, the absolute path of its merged output.
        positions: a checkpointed run's name for its SQL sinks' positions
            (``dogesim_positions``), kept in its manifest so a resume uses the same.
    """

    run: ShardedRun
    seed: int
    shards: int
    subjects: int
    seeds: tuple[int, ...]
    run_id: str
    control: Control
    outputs: Mapping[str, str] = field(default_factory=dict)
    positions: str = ""

    def share(self, k: int) -> int:
        """How many initial subjects shard `k` holds (``len(range(k, subjects, shards))``)."""
        return len(range(k, self.subjects, self.shards))

    def checkpoint_of(self, k: int) -> str | None:
        """Shard `k`'s checkpoint file, or None when the run keeps none."""
        base = self.run.checkpoint
        return shard_checkpoint(base, k) if base else None


def _layout(sink: Any, columnar: bool) -> tuple[int, str] | None:
    """A Parquet sink's ``(row_group_size, compression)``, for the merged file to have them."""
    rows, codec = getattr(sink, "row_group_size", None), getattr(sink, "compression", None)
    if not columnar or not isinstance(rows, int) or not isinstance(codec, str):
        return None
    return rows, codec


class Shard:
    """One shard of a run, as its model-building callable sees it.

    Attributes:
        index: the shard's number ``k`` (0-based).
        shards: how many shards the run has (``S``).
        seed: the shard's seed (its engine stream and its global `random`).
        subjects: how many initial subjects it holds.
        parts: the merged outputs registered so far (`merged`, `jsonl`, `csv`).
        sinks: their sinks (closed by the shard if building the model fails).
        resuming: the shard continues from its checkpoint (`jsonl` parts are appended to).
        checkpointed: the run keeps checkpoints (`csv` parts are then refused).
        checking: the shard is only built so that its checkpoint is checked before any shard
            of a resume starts: its merged outputs get sinks that open and write nothing.
    """

    def __init__(
        self,
        index: int,
        shards: int,
        seed: int,
        subjects: int,
        on_part: Callable[[str], None] | None = None,
    ) -> None:
        self.index = index
        self.shards = shards
        self.seed = seed
        self.subjects = subjects
        self.parts: list[PartFile] = []
        self.sinks: list[Any] = []
        self._on_part = on_part
        #: The shard continues from its checkpoint: its part files are appended to.
        self.resuming = False
        #: The run keeps checkpoints (CSV parts, which cannot be continued, are refused).
        self.checkpointed = False
        #: Built only to check its checkpoint: merged outputs open and write nothing.
        self.checking = False

    def global_index(self, local: int) -> int:
        """The run-wide index of this shard's `local`-th subject: ``index + shards * local``."""
        return self.index + self.shards * local

    def merged(
        self,
        target: str | os.PathLike[str],
        make: Callable[[str], Any],
        *,
        header: bool = False,
        columnar: bool = False,
    ) -> PartSink:
        """A sink for this shard's part of the file `target`, merged after the run.

        Args:
            target: the file the run writes (relative paths: to this process's directory).
            make: builds the file sink (one line per event, or a Parquet sink) for a given
                part path.
            header: the file starts with one header line (CSV).
            columnar: the sink writes Parquet (rows are merged, not lines).
        """
        path = os.path.abspath(os.fspath(target))
        if any(part.target == path for part in self.parts):
            raise ModelError(f"shard {self.index}: {os.fspath(target)!r} is merged twice")
        kind = compression_of(path) if not columnar else None
        if kind is not None:  # the merge compresses: zstd without zstandard fails now
            member_compressor(kind, f"merged file {os.fspath(target)!r}")
        part = part_path(path, self.index, self.shards)
        if self.checking:
            info = PartFile(path, f"file:{os.fspath(target)}", part, header, columnar)
            sink: PartSink = _UnwrittenPart(CountingSink("file"), info)
            self.parts.append(info)
            self.sinks.append(sink)
            return sink
        if self._on_part is not None:
            self._on_part(part)
        inner = make(part)
        name = ledger_name(inner)
        kind = name.split(":", 1)[0] if name else "file"
        info = PartFile(
            path, f"{kind}:{os.fspath(target)}", part, header, columnar, _layout(inner, columnar)
        )
        sink = PartSink(inner, info)
        self.parts.append(info)
        self.sinks.append(sink)
        return sink

    def jsonl(self, target: str | os.PathLike[str], mapper: Any = None) -> PartSink:
        """A `JsonLinesSink` of this shard's part of `target` (`mapper` as in it)."""
        from dogesim.sinks.files import JsonLinesSink

        append = self.resuming
        return self.merged(target, lambda path: JsonLinesSink(path, mapper, append=append))

    def parquet(
        self, target: str | os.PathLike[str], mapper: Any = None, **settings: Any
    ) -> PartSink:
        """A `ParquetSink` of this shard's part of `target` (`mapper` and `settings` —
        ``schema``, ``row_group_size``, ``compression`` — as in it); needs the ``parquet``
        extra. Declare the schema when a shard might infer another one than the others
        (a column that is None in its first rows)."""
        from dogesim.sinks.parquet import ParquetSink

        append = self.resuming
        return self.merged(
            target,
            lambda path: ParquetSink(path, mapper, append=append, **settings),
            columnar=True,
        )

    def csv(
        self,
        target: str | os.PathLike[str],
        mapper: Any = None,
        *,
        fieldnames: Sequence[str] | None = None,
    ) -> PartSink:
        """A `CsvSink` of this shard's part of `target` (`mapper`, `fieldnames` as in it)."""
        from dogesim.sinks.files import CsvSink

        if self.checkpointed:
            raise ModelError(
                f"shard {self.index}: the CSV part of {os.fspath(target)!r} cannot be continued "
                "from a checkpoint (its header is written once); checkpoint runs into JSONL"
            )
        return self.merged(
            target, lambda path: CsvSink(path, mapper, fieldnames=fieldnames), header=True
        )


class _UnwrittenPart(PartSink):
    """The part sink of a shard built only to check its checkpoint (`Shard.checking`): it
    counts, and its close leaves the part file and its index as they are."""

    def close(self) -> None:
        self.inner.close()


def ledger_name(sink: Any) -> str | None:
    """The name of `sink`'s ledger, or None."""
    ledger = getattr(sink, "ledger", None)
    return getattr(ledger, "sink", None)


def _creator(factory: Any) -> tuple[Callable[[], Any], Any]:
    """A fresh per-subject callable for one shard, and the object holding its state."""
    if inspect.isclass(factory) and callable(getattr(factory, "create", None)):
        instance = factory()  # a factory class (doge-datagen's SubjectFactory): one per shard
    elif inspect.isclass(factory) or inspect.isfunction(factory) or inspect.isbuiltin(factory):
        return factory, None  # called once per subject, as `Simulation` does
    else:
        # Copied, so shards run one after the other in one process do not share a counter
        # (as shards in separate processes never do).
        instance = copy.deepcopy(factory)
    create = getattr(instance, "create", None)
    if callable(create):
        return create, instance
    if callable(instance):
        return instance, getattr(instance, "__self__", instance)
    raise ModelError(f"subject_factory must be callable or have a create() method, got {factory!r}")


def shard_subjects(
    factory: Any, shard: Shard, renumber: Sequence[str] = RENUMBERED
) -> Callable[[], Any]:
    """The per-subject factory of `shard`.

    Each shard calls a fresh factory once per subject, in order, after seeding the global
    `random` with its seed. The factory counts subjects of its own shard, so an int attribute
    named in `renumber` (a counter id: ``c0 + j`` for the shard's ``j``-th subject) is moved to
    the global numbering, ``c0 + k + S * j``: ids are unique across shards and, without
    arrivals, the same set as in one process. Subjects without such attributes are left as
    the factory made them. A factory object with a ``for_shard(shard)`` method is asked for
    the shard's own factory first (a model file's factory is made from the shard's seed).
    """
    counter = 0

    if factory is None:

        def default() -> Any:
            nonlocal counter
            subject = SimpleNamespace(id=shard.global_index(counter))
            counter += 1
            return subject

        return default
    per_shard = getattr(factory, "for_shard", None)
    if callable(per_shard) and not inspect.isclass(factory):
        factory = per_shard(shard)  # a factory that needs the shard (its seed) to make one
    create, _ = _creator(factory)
    if not renumber or shard.shards == 1:
        return create
    names = tuple(renumber)
    shift_per_subject = shard.shards - 1

    def renumbered() -> Any:
        nonlocal counter
        subject = create()
        shift = shard.index + shift_per_subject * counter
        counter += 1
        for name in names:
            value = getattr(subject, name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(subject, name, value + shift)
        return subject

    return renumbered
