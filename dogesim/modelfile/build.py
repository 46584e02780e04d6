"""Building what a `ModelSpec` describes: its sinks and its `Model`.

- `build_sinks(spec, names, append=)`: fresh sinks by name; those built are closed when one
  fails.
- `opened(sink, name, build)`: a sink made, an OSError opening its output a
  `SinkConfigError` naming the file's line (also a shard's sinks and parts).
- `build_model(spec, sinks, callbacks=)`: the `Model` at the file's tick.
- `_add_transition(model, transition, ...)`: one `TransitionSpec` added to a `Model`.
- `churn_sinks(spec, sinks)`: the built sinks that churn events go to.
- `_with_args(callback, args)`: a callback bound to its ``args:``.
- `_close_quietly(sinks)`: close sinks after a failure (their own errors would hide it).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dogesim import redact
from dogesim.errors import ModelError, SinkConfigError
from dogesim.model import Model

if TYPE_CHECKING:
    from dogesim.modelfile.spec import ModelSpec
    from dogesim.modelfile.transitions import TransitionSpec

#: Built sinks: by name (each transition takes those it names), or a list every one feeds.
Sinks = Mapping[str, Any] | Sequence[Any]


def build_sinks(spec: ModelSpec, names: Iterable[str] | None, *, append: bool) -> dict[str, Any]:
    """Fresh sinks by name (default: `ModelSpec.used_sinks`); see `ModelSpec.build_sinks`."""
    wanted = list(spec.used_sinks() if names is None else names)
    built: dict[str, Any] = {}
    try:
        for name in wanted:
            if name not in spec.sinks:
                raise ModelError(
                    f"{spec.path or spec.name}: no sink named {name!r}; sinks are "
                    f"{', '.join(spec.sinks) or 'none'}"
                )
            built[name] = _build_sink(spec, name, append=append)
    except BaseException:
        _close_quietly(built.values())
        raise
    return built


def _build_sink(spec: ModelSpec, name: str, *, append: bool) -> Any:
    sink = spec.sinks[name]
    return opened(sink, name, lambda: sink.build(append=append))


def opened(sink: Any, name: str, build: Callable[[], Any]) -> Any:
    """``build()``: the model file's sink `name` (its spec `sink`) made; an OSError opening
    its output is a `SinkConfigError` naming the file's line (one process or a shard)."""
    try:
        return build()
    except OSError as exc:
        # An output under a file, on a read-only mount, a name too long: nothing was
        # sent yet, so this is a bad setting, not a lost event.
        reason = exc.strerror or str(exc)
        if exc.filename is not None and os.fspath(exc.filename) != sink.settings.get("path"):
            # The file the system names is another: the directory made for the output.
            reason += f": {os.fspath(exc.filename)}"
        raise SinkConfigError(
            redact.mask(
                f"{sink.source}:{sink.line}: sinks.{name}: cannot open {sink.describe()}: {reason}"
            )
        ) from None


def build_model(spec: ModelSpec, sinks: Sinks, *, callbacks: bool) -> Model:
    """The `Model` at `spec`'s tick, its transitions feeding `sinks` (see
    `ModelSpec.build_model`)."""
    model = Model(
        spec.states,
        spec.initial_state,
        name=spec.name,
        tick_ms=spec.probability_tick,
        resources=dict(spec.resources),
        dwell=spec.dwell,
    )
    for transition in spec.transitions:
        if isinstance(sinks, Mapping):
            chosen = [sinks[name] for name in transition.sinks if name in sinks]
        else:
            chosen = list(sinks)
        callback = _with_args(transition.callback, transition.callback_args) if callbacks else None
        _add_transition(model, transition, callback, chosen)
    return model.at_tick(spec.tick_ms)


def _add_transition(
    model: Model,
    transition: TransitionSpec,
    callback: Callable[..., Any] | None = None,
    sinks: list[Any] | None = None,
) -> None:
    """Add `transition` to `model` (reading a file checks each transition this way too)."""
    model.add_transition(
        transition.trigger,
        transition.from_state,
        transition.to_state,
        transition.probability,
        callback,
        sinks,
        profile=transition.profile,
        resource=transition.resource,
        hold=transition.hold,
        delay=transition.delay,
        rate_attribute=transition.rate_attribute,
        chances=transition.chances,
    )


def churn_sinks(spec: ModelSpec, sinks: Sinks) -> list[Any]:
    """The built sinks churn events go to: the file's churn sinks, or every sink of a list."""
    if spec.churn is None:
        return []
    if isinstance(sinks, Mapping):
        return [sinks[name] for name in spec.churn_sinks if name in sinks]
    return list(sinks)


def _with_args(
    callback: Callable[..., Any] | None, args: Mapping[str, Any]
) -> Callable[..., Any] | None:
    """`callback` called with the model file's ``args:`` after (subject, transition)."""
    if callback is None or not args:
        return callback
    return functools.partial(callback, **args)


def _close_quietly(sinks: Iterable[Any]) -> None:
    """Close sinks after a failure to build the run (their own errors would hide it)."""
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


def _close_built(sinks: Sinks) -> None:
    """`_close_quietly` for sinks by name or as a list."""
    _close_quietly(sinks.values() if isinstance(sinks, Mapping) else sinks)
