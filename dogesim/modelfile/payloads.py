"""Payload templates, Faker, faults and state tables in model files.

- `PayloadContext`: what one file's templates share: the Faker locale (``faker:``), the
  populations ``ref`` fields pick from, and the compiled mappers each run restarts.
- `payload_context(src)`, `read_faker(src, top)`: the context of a file being read, and its
  ``faker: {locale: de_DE}`` section.
- `is_template(value)`: a sink setting or subject attribute written as a template (a mapping
  or list) rather than an import path or a distribution.
- `template_setting(src, sink, key, sink_type)`: a sink's ``key``/``value``/``mapper``/
  ``format`` template compiled into a rebindable mapper (Kafka values as compact JSON, Kafka
  keys as text).
- `template_attributes(src, attrs, names)`: subject attributes from templates (Faker, ``seq``,
  ``ref``, ``expr`` over ``index``), checked now, made per run by `TemplateAttributes`.
- `split_faults(sink, value)`: a sink's ``faults:`` read into `dogesim.faults.Faults`, and its
  other settings; `build_faulty(build, settings, faults, name)` wraps the built sink.
- `start_run(spec, sinks, seed, factory)`: a run's start: templates restarted with its
  seed, fault streams reseeded, state tables inserting what the factory makes.
- `track_state_tables(sinks, simulation, factory, initial)`: the factory, making the state
  tables among `sinks` insert what it makes (a new run's, and a resumed run's newcomers).
- `check_state_tables(spec)`: a ``state_table`` sink receives every move of its population,
  and learns the initial and final states from the model.

Template errors name the file and the line of the field at fault:
``shop.yaml:31: sinks.orders.value.customer: unknown population 'custmers' ...``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from dogesim.errors import ModelError, RunError
from dogesim.modelfile.source import _describe, _key_line, _Map, _plain, _Reader, _Seq, _Source

if TYPE_CHECKING:
    from dogesim.faults import Faults
    from dogesim.relations import EntityPool

__all__ = [
    "FAULT_KEYS",
    "PayloadContext",
    "TemplateAttributes",
    "build_faulty",
    "check_state_tables",
    "is_template",
    "payload_context",
    "read_faker",
    "split_faults",
    "start_run",
    "template_attributes",
    "template_setting",
    "track_state_tables",
]

#: The keys of a sink's ``faults:``.
FAULT_KEYS = ("duplicate", "drop", "late", "delay", "malformed", "malformed_kinds")
#: The keys of ``faker:``.
FAKER_KEYS = ("locale",)


@dataclass
class PayloadContext:
    """What the templates of one model file share.

    Attributes:
        locale: the Faker locale of ``faker:`` (None: Faker's default).
        pools: the populations ``ref`` fields may pick from, by name.
        mappers: the rebindable mappers compiled from the file, restarted each run.
        own: the pool this file's subjects join (an entity type's), and the attribute
            weighing them, or None.
        follows: (pool, recorded pool) pairs: each run plays the recorded history back into
            the pool by its clock (entity types above this one).
    """

    locale: str | list[str] | None = None
    pools: dict[str, EntityPool] = field(default_factory=dict)
    mappers: list[Any] = field(default_factory=list)
    own: tuple[EntityPool, str | None] | None = None
    follows: list[tuple[EntityPool, EntityPool]] = field(default_factory=list)


def payload_context(src: _Source) -> PayloadContext:
    """The payload context of the file `src` is reading (made on first use)."""
    context = getattr(src, "payloads", None)
    if not isinstance(context, PayloadContext):
        context = PayloadContext()
        src.payloads = context  # type: ignore[attr-defined]
    return context


def read_faker(src: _Source, top: _Reader) -> PayloadContext:
    """Read ``faker: {locale: de_DE}`` (or a list of locales) into the file's context."""
    context = payload_context(src)
    if not top.has("faker"):
        return context
    section = top.mapping("faker")
    section.check_keys(FAKER_KEYS)
    if section.has("locale"):
        raw = section.raw("locale")
        if isinstance(raw, _Seq):
            locale: str | list[str] = section.string_list("locale")
            if not locale:
                raise section.error("locale", "the list of locales is empty; give one or more")
        else:
            locale = section.string("locale")
        from dogesim.templates.fakes import make_faker

        try:
            make_faker(locale, 0, "faker.locale")
        except ModelError as exc:
            raise section.error("locale", str(exc).removeprefix("faker.locale: ")) from None
        context.locale = locale
    return context


def is_template(value: object) -> bool:
    """A setting written as a template: a mapping or a list (not an import path)."""
    return isinstance(value, (_Map, _Seq))


def _line_of(node: Any, rest: str, line: int) -> int:
    """The line of the field `rest` (``.a.b[2].c``) below `node`, as deep as it exists."""
    for part in rest.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and part.endswith("]") and part[1:-1].isdigit():
            index = int(part[1:-1])
            if not (isinstance(node, _Seq) and index < len(node)):
                break
            line = node.item_lines[index]
            node = node[index]
        elif isinstance(node, _Map) and part in node:
            line = _key_line(node, part, line)
            node = node[part]
        elif isinstance(node, _Map) and "object" in node and isinstance(node["object"], _Map):
            inner = node["object"]
            if part not in inner:
                break
            line = _key_line(inner, part, line)
            node = inner[part]
        else:
            break
    return line


def _compile(src: _Source, node: Any, line: int, path: str, build: Callable[[Any], Any]) -> Any:
    """`build(plain template)`, its `ModelError` placed at the line of the field at fault."""
    try:
        return build(_plain(node))
    except ModelError as exc:
        message = str(exc)
        field_path = message.split(": ", 1)[0]
        rest = field_path[len(path) :] if field_path.startswith(path) else ""
        # Through the file's error: ${VAR} secrets masked, long values shortened.
        raise src.error(_line_of(node, rest, line), "", message) from None


def _encoding(key: str, sink_type: str) -> tuple[str, str | None]:
    """(template kind, encoding) of sink setting `key` of a sink of `sink_type`."""
    if key == "key":
        return "key", "text" if sink_type == "kafka" else None
    if key == "format" or (key == "value" and sink_type == "kafka"):
        return "event", "json"
    return "event", None


def template_setting(src: _Source, sink: _Reader, key: str, sink_type: str) -> Any:
    """Sink setting `key` written as a template: a rebindable mapper of it.

    A Kafka sink's ``key`` gives text (None stays None), its ``value`` compact JSON; a
    ``kafka_avro`` sink gets the records as built (its serializers encode them); file, memory
    and SQL sinks get the records as built.
    """
    from dogesim.templates import Template

    context = payload_context(src)
    kind, encode = _encoding(key, sink_type)
    path = sink.where(key)

    def build(spec: Any) -> Any:
        template = Template(spec, path=path, kind=kind, locale=context.locale, pools=context.pools)
        return template.rebindable(0, encode=encode)

    mapper = _compile(src, sink.node[key], sink.line(key), path, build)
    context.mappers.append(mapper)
    return mapper


# -- subject attributes ----------------------------------------------------------------------


def is_template_attribute(value: object) -> bool:
    """A subject attribute written as a template: a mapping with one directive key."""
    from dogesim.templates import DIRECTIVES

    return isinstance(value, _Map) and any(key in DIRECTIVES for key in value)


class TemplateAttributes:
    """The template attributes of a population's subjects (checked when the file is read).

    `wrap(factory, seed)` gives a factory whose subjects also get these attributes, drawn
    from a `dogesim.templates.TemplateSubjectFactory` started with the run's seed.
    """

    def __init__(self, specs: Mapping[str, Any], *, path: str, context: PayloadContext) -> None:
        self.specs = dict(specs)
        self.path = path
        self.context = context

    def factory(self, seed: int) -> Any:
        """A `TemplateSubjectFactory` of these attributes for a run with `seed`."""
        from dogesim.templates import TemplateSubjectFactory

        return TemplateSubjectFactory(
            self.specs or {"id": {"seq": "subject"}},
            seed,
            path=self.path,
            locale=self.context.locale,
            pools=self.context.pools,
        )

    def wrap(self, base: Callable[[], Any], seed: int) -> Callable[[], Any]:
        """`base`'s subjects with the template attributes set on them."""
        made = self.factory(seed)

        def create() -> Any:
            subject = base()
            extra = made.create()
            target = subject.__dict__ if isinstance(subject, SimpleNamespace) else None
            for name in self.specs:
                if target is not None:
                    target[name] = getattr(extra, name)
                else:
                    setattr(subject, name, getattr(extra, name))
            return subject

        return create


def template_attributes(src: _Source, attrs: _Reader, names: Iterable[str]) -> TemplateAttributes:
    """The attributes `names` of ``subjects.attributes`` that are templates, checked now."""
    from dogesim.templates import TemplateSubjectFactory

    context = payload_context(src)
    path = attrs.path
    node = attrs.node
    specs = {}
    for name in names:
        where = attrs.where(name)
        specs[name] = node[name]

        def check(spec: Any, where: str = where, name: str = name) -> Any:
            return TemplateSubjectFactory(
                {name: spec}, 0, path=path, locale=context.locale, pools=context.pools
            )

        _compile(src, node[name], attrs.line(name), where, check)
    return TemplateAttributes(
        {name: _plain(spec) for name, spec in specs.items()}, path=path, context=context
    )


# -- faults ----------------------------------------------------------------------------------


def split_faults(sink: _Reader, value: _Map) -> tuple[_Map, Faults | None]:
    """A sink's settings without ``faults:``, and its faults (None without the key)."""
    if "faults" not in value:
        return value, None
    from dogesim.faults import Faults

    rest = _Map({k: v for k, v in value.items() if k != "faults"})
    rest.line = value.line
    rest.key_lines = {k: v for k, v in value.key_lines.items() if k != "faults"}
    section = sink.mapping("faults")
    section.check_keys(FAULT_KEYS)
    given: dict[str, Any] = {}
    for key in ("duplicate", "drop", "late", "malformed"):
        if section.has(key):
            given[key] = _rate(section, key)
    if section.has("delay"):
        given["delay"] = _plain(section.raw("delay"))
        if not section.has("late"):
            raise section.error("delay", "a delay needs a late rate (late: 0.02)")
    if section.has("malformed_kinds"):
        given["malformed_kinds"] = tuple(section.string_list("malformed_kinds"))
    try:
        faults = Faults(**given)
    except ModelError as exc:
        text = str(exc)
        head, _, detail = text.partition(": ")
        if head.startswith("faults.") and head[len("faults.") :] in FAULT_KEYS:
            raise section.error(head[len("faults.") :], detail) from None
        raise section.error("delay" if text.startswith("delay") else None, text) from None
    return rest, faults


def _rate(section: _Reader, key: str) -> float:
    """A fault rate: a fraction in [0, 1] (0.01) or a percentage text (``1%``)."""
    raw = section.raw(key)
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            number = float(raw.strip()[:-1]) / 100
        except ValueError:
            raise section.error(key, f"{_describe(raw)} is not a percentage such as 1%") from None
    elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise section.error(key, f"{_describe(raw)} is not a rate: give 0.01 or 1%")
    else:
        number = float(raw)
    if not 0.0 <= number <= 1.0:
        raise section.error(key, f"rate {_describe(raw)} must be in [0, 1] (0.01 is 1%) or 0-100%")
    return number


#: The setting that carries each sink type's payload (malformed records change it).
_PAYLOAD_KEYS = ("value", "mapper", "format")


def build_faulty(
    build: Callable[[Mapping[str, Any]], Any],
    settings: Mapping[str, Any],
    faults: Faults,
    name: str,
    where: str,
) -> Any:
    """``build(settings)`` wrapped in a `dogesim.faults.FaultySink` injecting `faults`.

    The payload setting (``value``, ``mapper`` or ``format``), when there is one, is
    wrapped, so malformations reach what the sink writes and a duplicate repeats the same
    record; a malformed rate needs one.
    """
    from dogesim.faults import FaultySink

    key = next((k for k in _PAYLOAD_KEYS if k in settings), None)
    if key is None:
        if faults.malformed > 0:
            raise ModelError(
                f"{where}: faults.malformed needs the sink's payload: give a value or mapper "
                "(a template or a module:function)"
            )
        return FaultySink(build(settings), faults, name=f"faults:{name}")
    return FaultySink.around(
        lambda mapper: build({**settings, key: mapper}),
        settings[key],
        faults,
        name=f"faults:{name}",
    )


# -- runs ------------------------------------------------------------------------------------


def start_run(
    context: PayloadContext | None,
    sinks: Iterable[Any],
    simulation: Any,
    factory: Callable[[], Any],
    *,
    initial: int,
) -> Callable[[], Any]:
    """Start `simulation`'s run: restart the file's templates with its seed (with one
    ``{seq: run}`` counter), reseed fault streams, play entity pools back by its clock, and
    make state tables insert each subject `factory` makes (the first `initial` at the
    run's start). Returns the factory to use."""
    from dogesim.faults import FaultySink
    from dogesim.templates import new_run_counter

    sinks = list(sinks)
    if context is not None:
        factory = _start_pools(context, factory, _run_clock(simulation))
        counter = new_run_counter()
        for mapper in context.mappers:
            mapper.rebind(simulation.seed, counter)
    for sink in _layers(sinks):
        if isinstance(sink, FaultySink):
            sink.reseed(simulation.seed)
    return track_state_tables(sinks, simulation, factory, initial=initial)


def track_state_tables(
    sinks: Iterable[Any], simulation: Any, factory: Callable[[], Any], *, initial: int
) -> Callable[[], Any]:
    """`factory`, making each state table among `sinks` insert the subjects it makes: the
    first `initial` dated at the run's start, later ones (newcomers) at their tick. A
    resumed run passes 0 (its subjects come from the checkpoint, its newcomers from here)."""
    tables = [sink for sink in _layers(sinks) if type(sink).__name__ == "StateTableSink"]
    if not tables:
        return factory
    start, now = simulation.timestamp_start, _run_clock(simulation)
    made = [0]

    def create() -> Any:
        subject = factory()
        at = start if made[0] < initial else now()
        made[0] += 1
        for table in tables:
            table.created(subject, at)
        return subject

    return create


def _layers(sinks: Iterable[Any]) -> Iterator[Any]:
    """Each sink, and the sinks inside the wrappers a model file puts around it (faults,
    pacing caps)."""
    for outer in sinks:
        sink, seen = outer, 0
        while sink is not None and seen < 8:
            yield sink
            sink, seen = getattr(sink, "inner", None), seen + 1


def _run_clock(simulation: Any) -> Callable[[], int]:
    """The time of the tick `simulation` is handling. SimPy's clock counts ticks from the
    walker's origin, which is the checkpoint's tick before 0 in a resumed run."""
    start, tick_ms, env = simulation.timestamp_start, simulation.tick_ms, simulation.env
    calendar = getattr(simulation, "_calendar", None)  # month ticks (``tick: 1mo``)

    def now() -> int:
        walker = getattr(simulation, "_walker", None)
        tick = round(env.now - (walker.origin if walker is not None else 0))
        return int(calendar.stamp(tick) if calendar is not None else start + tick * tick_ms)

    return now


def _start_pools(
    context: PayloadContext, factory: Callable[[], Any], now: Callable[[], int]
) -> Callable[[], Any]:
    """Play the recorded pools back by this run's clock `now`; record the own pool's
    history and make each new subject join it."""
    for pool, recorded in context.follows:
        pool.follow(recorded, now)
    if context.own is None:
        return factory
    pool, weight = context.own
    pool.clear()
    pool.record(now)

    def joining() -> Any:
        subject = factory()
        try:
            pool.add(subject.id, getattr(subject, weight) if weight is not None else 1.0)
        except AttributeError as exc:
            raise RunError(
                f"entity type {pool.name!r}: a new subject has no {exc.name!r} attribute, "
                "which its pool needs (the id, and the weight: attribute)"
            ) from None
        return subject

    return joining


def check_state_tables(
    sinks: Mapping[str, Any],
    transitions: Iterable[Any],
    *,
    initial_state: object,
    states: Iterable[str],
    churn_sinks: Iterable[str] = (),
) -> None:
    """Give each ``state_table`` sink its initial and final states, and check it receives
    every move (it would fall behind otherwise).

    Raises:
        ModelError: a transition or the churn does not feed it, or the initial state is a mix.
    """
    tables = [spec for spec in sinks.values() if spec.type == "state_table"]
    if not tables:
        return
    moves = list(transitions)
    outgoing = {t.from_state for t in moves}
    finals = [s for s in states if s not in outgoing]
    for spec in tables:
        if not isinstance(initial_state, str):
            raise ModelError(
                f"{spec.where}: a state table needs one initial state, not a mix "
                f"({_describe(initial_state)})"
            )
        for i, move in enumerate(moves):
            if spec.name not in move.sinks:
                raise ModelError(
                    f"{spec.source}:{move.line}: transitions[{i}]: its events do not go to the "
                    f"state table {spec.name!r}, which must see every move; add it to "
                    "default_sinks or to the transition's sinks"
                )
        spec.settings.setdefault("initial_state", initial_state)
        finals_here = [*finals, *(["churned"] if spec.name in set(churn_sinks) else [])]
        spec.settings.setdefault("final_states", finals_here)


def restart_on_resume(spec: Any, sink_names: Iterable[str]) -> str | None:
    """What in `spec` keeps state across events that a checkpoint does not save (None:
    nothing): a payload template or faults on one of `sink_names`, or templated subject
    attributes of newcomers. A resume would start their sequence numbers, Faker streams and
    fault draws again, so the output would differ from the uninterrupted run's."""
    mappers = {id(m) for m in getattr(spec.payloads, "mappers", None) or ()}
    for name in sink_names:
        sink = spec.sinks[name]
        if sink.faults is not None:
            return f"{sink.where}.faults injects faults"
        for key, value in sink.settings.items():
            if id(value) in mappers:
                return f"{sink.where}.{key} is a payload template"
    if getattr(spec.subjects, "templates", None) is not None and spec.arrivals is not None:
        return f"{spec.path or spec.name}: subjects.attributes are templates and newcomers arrive"
    return None
