"""Writing model files: `dump_model` (used by ``dogesim fit``), checked by loading it back."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import yaml

from dogesim.errors import ModelError
from dogesim.model import Model
from dogesim.modelfile.online import LiveSpec
from dogesim.modelfile.source import _format_timestamp, _import_name, _ModelDumper
from dogesim.modelfile.spec import ModelSpec, load_model_text
from dogesim.rates import Rate, format_duration


def _percent(value: float, digits: int = 6) -> float:
    """`value` (a percentage) rounded *down* to `digits` significant digits.

    Rounding down keeps the outgoing sum of a state at or below the exact one, so a fitted
    model whose probabilities sum to 100% is still valid when written.
    """
    if value <= 0 or not math.isfinite(value):
        return 0.0 if value <= 0 else value
    exponent = math.floor(math.log10(value))
    quantum = Decimal(1).scaleb(exponent - digits + 1)
    return float(Decimal(repr(value)).quantize(quantum, rounding=ROUND_FLOOR))


def _escape(value: Any) -> Any:
    """`value` with every ``${`` in its strings written as ``$${`` (read back literally)."""
    if isinstance(value, Mapping):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, str):
        return value.replace("${", "$${")
    return value


def _online_settings(spec: ModelSpec) -> list[str]:
    """The online settings of `spec` that `dump_model` does not write."""
    found = {
        "rates": any(isinstance(t.probability, Rate) for t in spec.transitions)
        or spec.probability_tick is not None,
        "calendar profiles": any(t.profile is not None for t in spec.transitions),
        "resources": bool(spec.resources),
        "arrivals": spec.arrivals is not None,
        "churn": spec.churn is not None,
        "jitter": spec.jitter,
        "live settings": spec.live != LiveSpec(),
    }
    return [name for name, present in found.items() if present]


def dump_model(
    model: Model | ModelSpec,
    path: str | os.PathLike[str] | None = None,
    *,
    tick_ms: int | None = None,
    ticks: int | None = None,
    subjects: int | None = None,
    timestamp_start: int | None = None,
    seed: int | None = None,
    name: str | None = None,
    description: str | None = None,
    descriptions: Mapping[tuple[str, str], str] | None = None,
    sinks: Mapping[str, Mapping[str, Any]] | None = None,
    default_sinks: Sequence[str] | None = None,
    header: str | None = None,
    subjects_section: Mapping[str, Any] | None = None,
    calendar: int | None = None,
) -> str:
    """Write a model file for `model` and return its text (written to `path` when given).

    Args:
        model: a `Model` (then `tick_ms`, `ticks` and `subjects` are needed) or a loaded
            `ModelSpec` (its values are the defaults).
        path: where to write; None only returns the text.
        tick_ms, ticks, subjects, timestamp_start, seed, name, description: the run's settings.
        descriptions: free text per transition, keyed by ``(from_state, trigger)``.
        sinks: the ``sinks:`` section as plain settings (import paths as strings).
        default_sinks: the ``default_sinks:`` list.
        header: comment lines written at the top.
        subjects_section: how subjects are made (``factory``/``factory_args`` or
            ``attributes``, as plain settings); default: the `ModelSpec`'s, else plain
            subjects with an ``id``.
        calendar: months per tick of calendar ticks (written ``tick: 1mo``; `tick_ms` is
            then their mean length); default: the `ModelSpec`'s.

    Callbacks are written as import paths when they can be imported back; others are left
    out (with a comment in the header). The text is loaded back before it is written, so a
    file that `load_model_file` would reject is never produced.
    """
    spec = model if isinstance(model, ModelSpec) else None
    bare = model.model if isinstance(model, ModelSpec) else model
    tick_ms = tick_ms if tick_ms is not None else (spec.tick_ms if spec else None)
    ticks = ticks if ticks is not None else (spec.ticks if spec else None)
    subjects = subjects if subjects is not None else (spec.subjects.count if spec else None)
    if tick_ms is None or ticks is None or subjects is None:
        raise ModelError("dump_model: give tick_ms, ticks and subjects for a bare Model")
    if timestamp_start is None:
        timestamp_start = spec.timestamp_start if spec else 0
    if seed is None and spec is not None:
        seed = spec.seed
    notes: list[str] = []
    doc: dict[str, Any] = {"name": name or (spec.name if spec else bare.name)}
    text_description = description or (spec.description if spec else None)
    if text_description:
        doc["description"] = text_description
    if seed is not None:
        doc["seed"] = seed
    doc["states"] = list(bare.states)
    doc["initial_state"] = bare.initial  # a name, or the mix's shares
    if bare.dwell:
        doc["dwell"] = {state: law.to_dict() for state, law in bare.dwell.items()}
    calendar = calendar if calendar is not None else (spec.calendar if spec else None)
    doc["tick"] = f"{calendar}mo" if calendar else format_duration(tick_ms)
    doc["ticks"] = ticks
    doc["start"] = _format_timestamp(timestamp_start)
    subjects_doc: dict[str, Any] = {"count": subjects}
    if subjects_section is not None:
        subjects_doc.update({k: v for k, v in subjects_section.items() if k != "count"})
    elif spec is not None and spec.subjects.factory_path:
        subjects_doc["factory"] = spec.subjects.factory_path
        if spec.subjects.factory_args:
            subjects_doc["factory_args"] = spec.subjects.factory_args
    elif spec is not None and spec.subjects.attributes:
        subjects_doc["attributes"] = {k: d.describe() for k, d in spec.subjects.attributes.items()}
    doc["subjects"] = subjects_doc
    if sinks is None and spec is not None and spec.sinks:
        notes.append("sinks were not written back; add a `sinks:` section to send events")
    if spec is not None and _online_settings(spec):
        notes.append(
            f"{', '.join(_online_settings(spec))} were not written back; probabilities are "
            f"per tick of {format_duration(tick_ms)}"
        )
    if sinks:
        doc["sinks"] = {k: dict(v) for k, v in sinks.items()}
    if default_sinks:
        doc["default_sinks"] = list(default_sinks)
    transitions = []
    for t in bare.transitions:
        entry: dict[str, Any] = {
            "trigger": t.trigger,
            "from": t.from_state,
            "to": t.to_state,
            "probability": _percent(float(t.probability)),
        }
        if t.chances is not None:  # a table by month or age, instead of the probability
            del entry["probability"]
            entry.update(t.chances.to_dict())
        if t.action_callback is not None:
            target = _import_name(t.action_callback)
            if target is None:
                notes.append(f"callback of {t.trigger!r} is not importable and was left out")
            else:
                entry["callback"] = target
        if t.delay is not None:
            entry["delay"] = t.delay.to_dict()
        if t.rate_attribute:
            entry["rate_attribute"] = t.rate_attribute
        note = (descriptions or {}).get((t.from_state, t.trigger))
        if note:
            entry["description"] = note
        transitions.append(entry)
    doc["transitions"] = transitions
    body = yaml.dump(
        _escape(doc), Dumper=_ModelDumper, sort_keys=False, allow_unicode=True, width=100
    )
    comments = [*(header.splitlines() if header else []), *notes]
    text = "".join(f"# {line}\n" if line else "#\n" for line in comments) + body
    target_name = os.fspath(path) if path is not None else "<dump_model>"
    load_model_text(text, source=target_name, environ={})
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
