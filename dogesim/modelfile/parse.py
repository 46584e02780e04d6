"""Reading a whole model file: YAML to a checked `ModelSpec`.

- `_parse(text, source, directory, ...)`: the model file in `text`, every section read by
  its module (`runkeys`, `sinkkeys`, `transitions`, `flows`, `subjects`, `online`,
  `cohorts`, `payloads`), then the whole run checked and the caller's overrides applied; a
  file with several entity types is read by `entities`, each type by `_read_spec`.
- `_read_spec(src, top)`: one model from a checked, interpolated document.
- `_load_yaml(text, source)`: the YAML document, each node knowing its line.
- `_read_states(top)`: ``states:``, non-empty, without repeats or control characters.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from dogesim.errors import ModelError
from dogesim.modelfile.cohorts import read_dwell, read_initial
from dogesim.modelfile.entities import (
    ENTITIES_REQUIRED,
    ENTITIES_TOP_KEYS,
    has_entities,
    read_entities,
)
from dogesim.modelfile.flows import _read_arrivals, _read_churn
from dogesim.modelfile.keys import _TOP_KEYS, _TOP_REQUIRED
from dogesim.modelfile.online import _read_live, _read_profiles, _read_resources
from dogesim.modelfile.payloads import check_state_tables, payload_context, read_faker
from dogesim.modelfile.runkeys import (
    _check_run,
    _override,
    _read_calendar,
    _read_checkpoint,
    _read_clock,
    _read_record_every,
)
from dogesim.modelfile.sinkkeys import _read_default_sinks, _read_sinks
from dogesim.modelfile.source import MAX_SUBJECTS, _interpolate, _LineLoader, _Map, _Reader, _Source
from dogesim.modelfile.spec import ModelSpec
from dogesim.modelfile.subjects import _read_subjects
from dogesim.modelfile.transitions import _read_transitions


def _parse(
    text: str,
    source: str,
    directory: Path,
    *,
    subjects: int | None,
    ticks: int | None,
    seed: int | None,
    environ: Mapping[str, str] | None,
) -> ModelSpec:
    """The checked `ModelSpec` of the model file `text` (named `source` in messages)."""
    src = _Source(source, directory, os.environ if environ is None else environ)
    data = _load_yaml(text, source)
    top = _Reader(src, data, "")
    entities = has_entities(data)
    # Unknown keys first: nothing under a key that is refused anyway is interpolated.
    if entities:
        top.check_keys(ENTITIES_TOP_KEYS, ENTITIES_REQUIRED)
    else:
        top.check_keys(_TOP_KEYS, _TOP_REQUIRED)
    _interpolate(data, src, data.line, "")
    read_faker(src, top)
    if entities:
        return read_entities(
            src,
            data,
            lambda one, reader: _override(
                _read_spec(one, reader), subjects=subjects, ticks=ticks, seed=None
            ),
            seed=seed,
        )
    return _override(_read_spec(src, top), subjects=subjects, ticks=ticks, seed=seed)


def _read_spec(src: _Source, top: _Reader) -> ModelSpec:
    """The one model of the checked, interpolated document `top` reads."""
    name = top.string("name") if top.has("name") else Path(src.name).stem
    states = _read_states(top)
    initial = read_initial(top, states)
    dwell = read_dwell(top, states)
    tick_ms, probability_tick, n_ticks, start, file_seed = _read_clock(top)
    sink_specs = _read_sinks(src, top)
    default_sinks = _read_default_sinks(top, sink_specs)
    subjects_spec = _read_subjects(src, top)
    profiles = _read_profiles(src, top)
    resources = _read_resources(top)
    transitions = _read_transitions(
        src,
        top,
        states,
        list(sink_specs),
        default_sinks,
        name,
        tick_ms=tick_ms,
        probability_tick=probability_tick,
        profiles=profiles,
        resources=resources,
    )
    arrivals, arrivals_profile = _read_arrivals(top, profiles)
    if subjects_spec.count == 0 and arrivals is None:
        raise top.mapping("subjects").error(
            "count", "0 subjects and no arrivals: give count >= 1, or arrivals: (e.g. 30 per hour)"
        )
    churn, churn_sinks = _read_churn(top, list(sink_specs), default_sinks)

    check_state_tables(
        sink_specs,
        transitions,
        initial_state=initial,
        states=states,
        churn_sinks=churn_sinks if churn is not None else (),
    )

    spec = ModelSpec(
        path=src.name,
        name=name,
        description=top.optional_string("description"),
        states=tuple(states),
        initial_state=initial,
        dwell=dwell,
        transitions=transitions,
        tick_ms=tick_ms,
        calendar=_read_calendar(top, start),
        ticks=n_ticks,
        timestamp_start=start,
        seed=file_seed,
        subjects=subjects_spec,
        sinks=sink_specs,
        default_sinks=default_sinks,
        probability_tick=probability_tick,
        profiles=profiles,
        resources=resources,
        arrivals=arrivals,
        arrivals_profile=arrivals_profile,
        churn=churn,
        churn_sinks=churn_sinks,
        jitter=top.boolean("jitter", False),
        record_every=_read_record_every(top, tick_ms) if top.has("record_every") else None,
        live=_read_live(top),
        shards=top.integer("shards", minimum=1, maximum=MAX_SUBJECTS)
        if top.has("shards")
        else None,
    )
    if top.has("checkpoint"):
        spec.checkpoint_path, spec.checkpoint_every = _read_checkpoint(top, tick_ms)
    spec.payloads = payload_context(src)
    _check_run(spec, src, top)
    return spec


def _load_yaml(text: str, source: str) -> _Map:
    """The YAML mapping in `text`; not YAML, or not a mapping, is a `ModelError`."""
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ModelError(f"{source}:{line}: this is not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{source}: this is not valid YAML: {exc}") from None
    if not isinstance(data, _Map):
        raise ModelError(
            f"{source}:1: a model file is a mapping with keys {', '.join(_TOP_KEYS)}; "
            f"got {type(data).__name__}"
        )
    return data


def _read_states(top: _Reader) -> list[str]:
    """``states:``: at least one, none listed twice, none with control characters."""
    states = top.name_list("states")
    if not states:
        raise top.error("states", "the state list is empty; give at least one state")
    seen_states: set[str] = set()
    for state in states:  # a set, not states.count(): linear in the number of states
        if state in seen_states:
            raise top.error("states", f"state {state!r} is listed twice")
        seen_states.add(state)
    return states
