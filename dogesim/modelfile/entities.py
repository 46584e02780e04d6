"""Several entity types in one model file: ``entities:`` (or ``populations:``).

- `ENTITY_KEYS`, `ENTITIES_TOP_KEYS`: the keys of one entity and of the top level of a file
  with entities.
- `has_entities(data)`: the file declares entity types.
- `read_entities(src, data, read_spec, ...)`: each entity read as a model of its own (its
  states, subjects, transitions, arrivals), sharing the file's clock, seed, Faker and
  sinks, into an `EntitiesSpec`.
- `EntitiesSpec`: the loaded file (a `ModelSpec` whose own fields are the first type's):
  ``run()`` runs every entity type, one after another in file order, into an
  `EntitiesResult` (their `RunResult` s by name); ``simulations()`` gives each type's
  `Simulation` to run in turn.
- `EntitiesResult`: those results, with their totals.
- `entity_seed(seed, name)`: the seed of one entity type's run.

How references resolve. Each entity type has a pool of the ids of its entities that exist
(added when made, removed when they enter a final state). A ``ref`` field of a later entity
type (``customer_id: {pick: customers, by: zipf, s: 1.1}``) picks from the pool as it was at
the time of the tick being handled: the earlier type's run recorded its pool's history and
the later run plays it back by its clock. So every reference names an entity that existed
at that time, and a type may refer to itself (its own pool, live) and to the types above it,
never to one below. Churn (``churn:``) does not remove from a pool; a move into a final
state does.

Each entity type's sinks are its own: a sink fed by two types is refused. The seed of type
``orders`` in a run with seed ``S`` is `entity_seed(S, "orders")`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dogesim.errors import ModelError
from dogesim.modelfile.payloads import PayloadContext, payload_context
from dogesim.modelfile.source import _describe, _key_line, _Map, _Reader, _Seq, _Source
from dogesim.modelfile.spec import ModelSpec

if TYPE_CHECKING:
    from dogesim.engine import RunResult, Simulation
    from dogesim.model import Transition
    from dogesim.relations import EntityPool
    from dogesim.sinks.base import DeliveryLedger

__all__ = [
    "ENTITIES_REQUIRED",
    "ENTITIES_TOP_KEYS",
    "ENTITY_KEYS",
    "EntitiesResult",
    "EntitiesSpec",
    "entity_seed",
    "has_entities",
    "read_entities",
]

#: The keys of one entity type.
ENTITY_KEYS = (
    "description",
    "states",
    "initial_state",
    "dwell",
    "subjects",
    "default_sinks",
    "transitions",
    "resources",
    "arrivals",
    "churn",
    "weight",
)
_ENTITY_REQUIRED = ("states", "initial_state", "subjects", "transitions")
#: The top-level keys of a file with entity types.
ENTITIES_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "tick",
    "ticks",
    "start",
    "faker",
    "sinks",
    "probability_tick",
    "profiles",
    "jitter",
    "record_every",
    "live",
    "entities",
    "populations",
)
#: The top-level keys a file with entity types must have.
ENTITIES_REQUIRED = ("tick", "ticks")
#: Top-level keys every entity type reads as its own.
_SHARED = (
    "seed",
    "tick",
    "ticks",
    "start",
    "faker",
    "probability_tick",
    "profiles",
    "jitter",
    "record_every",
    "live",
)


def has_entities(data: Mapping[str, Any]) -> bool:
    """The file declares entity types (``entities:`` or ``populations:``)."""
    return "entities" in data or "populations" in data


def entity_seed(seed: int, name: str) -> int:
    """The seed of entity type `name` in a run with `seed`: from
    ``SeedSequence([seed, *name])``, so each type's stream is its own."""
    words = np.random.SeedSequence([int(seed), *name.encode("utf-8")]).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])


class EntitiesResult(dict[str, "RunResult"]):
    """The results of a run of several entity types: each type's `RunResult` by name, and
    what they add up to (``events``, ``ledgers``, ``ticks``, ``stopped``, ``summary()``)."""

    @property
    def events(self) -> int:
        """Events of every type."""
        return sum(result.events for result in self.values())

    @property
    def ledgers(self) -> list[DeliveryLedger]:
        """The ledgers of every type's sinks, type by type."""
        return [ledger for result in self.values() for ledger in result.ledgers]

    @property
    def ticks(self) -> int:
        """The ticks simulated (each type runs the file's ticks)."""
        return max((result.ticks for result in self.values()), default=0)

    @property
    def stopped(self) -> bool:
        """True when a type's run stopped before its end."""
        return any(result.stopped for result in self.values())

    def summary(self) -> str:
        """One paragraph per entity type: its name, then its result's summary."""
        return "\n".join(f"{name}: {result.summary()}" for name, result in self.items())


class EntitiesSpec(ModelSpec):
    """A model file with several entity types: a `ModelSpec` whose run is theirs.

    Its own `ModelSpec` fields are those of the first type (the file's clock, seed and
    tick are shared); `entities` holds each type's model, in file order. `run` runs them
    all; `simulation` is refused (there is one `Simulation` per type: `simulations`).

    Attributes:
        entities: each entity type's model, in file order.
    """

    entities: dict[str, ModelSpec]

    def __init__(
        self,
        first: ModelSpec,
        entities: dict[str, ModelSpec],
        *,
        name: str,
        description: str | None,
        seed: int | None,
    ) -> None:
        for item in dataclasses.fields(ModelSpec):
            setattr(self, item.name, getattr(first, item.name))
        self.name, self.description, self.seed = name, description, seed
        self.sinks = {k: v for spec in entities.values() for k, v in spec.sinks.items()}
        self.entities = entities

    def __repr__(self) -> str:
        return f"EntitiesSpec(name={self.name!r}, entities={list(self.entities)!r})"

    def used_sinks(self) -> list[str]:
        """The sinks some entity type feeds, in order."""
        return [name for spec in self.entities.values() for name in spec.used_sinks()]

    def run(self, **overrides: Any) -> EntitiesResult:  # type: ignore[override]
        """Run every entity type in file order; their results by name.

        Args:
            overrides: run settings as for `ModelSpec.run` (``seed`` is the whole run's;
                each type runs with `entity_seed`).

        Raises:
            SinkError, RunError, ModelError: as `ModelSpec.run`; the types after a failed
                one do not run.
        """
        results = EntitiesResult()
        for name, simulation in self.simulations(**overrides):
            results[name] = simulation.run()
        return results

    def simulations(self, **overrides: Any) -> Iterator[tuple[str, Simulation]]:
        """Each entity type's ready `Simulation`, in file order, built when the one before
        has run (its pool history is what the next one refers to): run each before taking
        the next.

        Args:
            overrides: as for `run`.
        """
        from dogesim.engine.options import choose_seed

        given = overrides.pop("seed", None)
        seed = choose_seed(given if given is not None else self.seed)
        for name, spec in self.entities.items():
            yield name, spec.simulation(seed=entity_seed(seed, name), **overrides)

    def simulation(self, **kwargs: Any) -> Simulation:
        """Refused: each entity type has its own `Simulation` (`simulations`, `run`)."""
        raise ModelError(
            f"{self.path or self.name}: a file with several entity types runs one Simulation "
            "per type: use run() or simulations()"
        )

    def resume(self, *args: Any, **kwargs: Any) -> Simulation:
        """Refused: a run of several entity types cannot be resumed yet."""
        raise ModelError(
            f"{self.path or self.name}: a run of several entity types cannot be resumed"
        )

    def summary(self) -> str:
        """One line: each entity type's states, transitions, subjects and sinks."""
        seed = self.seed if self.seed is not None else "random"
        parts = [
            f"{name} ({len(spec.states)} states, {len(spec.transitions)} transitions, "
            f"{spec.subjects.count} subjects; sinks: {', '.join(spec.used_sinks()) or 'none'})"
            for name, spec in self.entities.items()
        ]
        return f"{self.name}: {len(self.entities)} entity types, seed {seed}: " + "; ".join(parts)


def _node(entries: Mapping[str, Any], lines: Mapping[str, int], line: int) -> _Map:
    node = _Map(entries)
    node.line = line
    node.key_lines = dict(lines)
    return node


def _sink_names(entity: _Map) -> list[str]:
    """The sink names an entity section mentions (default_sinks, transitions, churn)."""
    names: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, _Seq):
            names.extend(str(v) for v in value if isinstance(v, str))

    add(entity.get("default_sinks"))
    transitions = entity.get("transitions")
    # The sections are read (and a wrong shape refused) later; here only what is usable.
    for item in transitions if isinstance(transitions, _Seq) else ():
        if isinstance(item, _Map):
            add(item.get("sinks"))
    churn = entity.get("churn")
    if isinstance(churn, _Map):
        add(churn.get("sinks"))
    return list(dict.fromkeys(names))


def _entity_document(data: _Map, entity: _Map, name: str, sinks: list[str]) -> _Map:
    """The model file one entity type reads: the shared keys, its own, and its sinks."""
    entries: dict[str, Any] = {"name": name}
    lines: dict[str, int] = {"name": entity.line}
    for key in _SHARED:
        if key in data:
            entries[key] = data[key]
            lines[key] = _key_line(data, key, data.line)
    for key, value in entity.items():
        if key == "weight":  # the pool's, not the model's
            continue
        entries[key] = value
        lines[key] = _key_line(entity, key, entity.line)
    every = data.get("sinks")
    if isinstance(every, _Map):
        mine = {k: v for k, v in every.items() if k in sinks}
        entries["sinks"] = _node(
            mine, {k: every.key_lines[k] for k in mine}, getattr(every, "line", data.line)
        )
        lines["sinks"] = _key_line(data, "sinks", data.line)
    return _node(entries, lines, entity.line)


def _final_states(spec: ModelSpec) -> set[str]:
    outgoing = {t.from_state for t in spec.transitions}
    return {s for s in spec.states if s not in outgoing}


def _removing(pool: EntityPool, callback: Callable[..., Any] | None) -> Callable[..., Any]:
    """A callback removing the subject from `pool` when its move into a final state happens
    (after `callback`, whose veto keeps it)."""

    def leave(subject: Any, transition: Transition) -> Any:
        allowed = callback(subject, transition) if callback is not None else True
        if allowed:
            pool.remove(subject.id)
        return allowed

    return leave


def read_entities(
    src: _Source,
    data: _Map,
    read_spec: Callable[[_Source, _Reader], ModelSpec],
    *,
    seed: int | None = None,
) -> EntitiesSpec:
    """Read a file with entity types (its keys are checked and interpolated already).

    Args:
        src: the file.
        data: its document.
        read_spec: reads one model from a document (the reader of a one-model file, with
            the caller's overrides: a ``subjects`` override sets every type's count).
        seed: overrides the file's seed.

    Raises:
        ModelError: naming the file, line and key.
    """
    from dogesim.relations import EntityPool

    top = _Reader(src, data, "")
    if "entities" in data and "populations" in data:
        raise top.error("populations", "give either entities: or populations:, not both")
    key = "entities" if "entities" in data else "populations"
    section = top.mapping(key)
    if not section.node:
        raise top.error(key, "no entity types; give at least one (e.g. customers: {...})")
    owner: dict[str, str] = {}
    shared = payload_context(src)
    pools: dict[str, EntityPool] = {}
    histories: dict[str, EntityPool] = {}
    entities: dict[str, ModelSpec] = {}
    for name, entity in section.node.items():
        where = section.where(str(name))
        line = section.line(str(name))
        if not isinstance(name, str) or not name.isidentifier():
            raise src.error(line, where, f"entity name {_describe(name)} is not an identifier")
        if not isinstance(entity, _Map):
            raise src.error(line, where, f"{_describe(entity)}: give the entity as a mapping")
        reader = _Reader(src, entity, where)
        reader.check_keys(ENTITY_KEYS, _ENTITY_REQUIRED)
        names = _sink_names(entity)
        for sink in names:
            if sink in owner:
                raise src.error(
                    line,
                    where,
                    f"sink {sink!r} is fed by entity types {owner[sink]!r} and {name!r}; give "
                    "each type its own sinks",
                )
            owner[sink] = name
        weight = entity.get("weight")
        if weight is not None and not isinstance(weight, str):
            raise reader.error("weight", f"{_describe(weight)} is not an attribute name")
        own = EntityPool(name)
        context = PayloadContext(
            shared.locale,
            {**pools, name: own},
            own=(own, weight),
            follows=[(pools[k], histories[k]) for k in pools],
        )
        entity_src = _Source(src.name, src.directory, src.environ)
        entity_src.payloads = context  # type: ignore[attr-defined]
        document = _entity_document(data, entity, name, names)
        spec = read_spec(entity_src, _Reader(entity_src, document, ""))
        if weight is not None and spec.subjects.factory is None:
            templated = spec.subjects.templates.specs if spec.subjects.templates else {}
            if weight not in spec.subjects.attributes and weight not in templated:
                raise reader.error(
                    "weight",
                    f"{weight!r} is not one of the subjects' attributes "
                    f"({', '.join([*spec.subjects.attributes, *templated]) or 'none'})",
                )
        finals = _final_states(spec)
        for transition in spec.transitions:
            if transition.to_state in finals:
                transition.callback = _removing(own, transition.callback)
        entities[name] = spec
        # Later types see this one through a replay of its history.
        histories[name] = own
        pools[name] = EntityPool(name)
    file_seed = top.integer("seed", minimum=0) if top.has("seed") else None
    return EntitiesSpec(
        next(iter(entities.values())),
        entities,
        name=top.string("name") if top.has("name") else Path(src.name).stem,
        description=top.optional_string("description"),
        seed=seed if seed is not None else file_seed,
    )
