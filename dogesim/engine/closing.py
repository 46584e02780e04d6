"""The two ends of a run: sinks made ready before the first event, and every sink closed
exactly once, whatever fails on the way.

- `open_all(sinks, first_ms, last_ms)`: reopen the `LedgeredSink` s a former run closed,
  and let each sink that can refuse the run's timestamps (``check_timestamps``) do so.

- `close_all(sinks)`: close each sink; return the close failures (wrapped as `SinkError`)
  and the first BaseException that is not an `Exception` (KeyboardInterrupt, SystemExit),
  which the caller re-raises once every sink is closed.
- `add_note(exc, note)`: attach a later failure to an earlier error without hiding it.
- `sink_name(sink)`: how a sink is named in ledgers and errors.
- `ledgers_of(sinks, order, handed)`: each sink's delivery ledger.
- `raise_close_errors(errors, interrupt, ledgers)`: what `close_all` found, raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from dogesim.errors import SinkError
from dogesim.model import Transition
from dogesim.sinks.base import DeliveryLedger, LedgeredSink, ledger_of, sink_method

__all__ = ["add_note", "close_all", "ledgers_of", "open_all", "raise_close_errors", "sink_name"]

LOGGER = logging.getLogger("dogesim")


def sink_name(sink: object) -> str:
    """A readable name for `sink`: its ledger's name, else its class and id."""
    ledger = ledger_of(sink)
    if ledger is not None:
        return ledger.sink
    return f"{type(sink).__name__}@{id(sink):x}"


def add_note(exc: BaseException, note: str) -> None:
    """Attach `note` to `exc` (logged instead on Python 3.10, which has no notes)."""
    add = getattr(exc, "add_note", None)  # Python >= 3.11
    if add is not None:
        add(note)
    else:  # pragma: no cover - Python 3.10
        LOGGER.error(note)


def describe(error: BaseException) -> str:
    """``Type: message`` (a bare KeyboardInterrupt says nothing by itself)."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def open_all(sinks: Iterable[Any], first_ms: int | None, last_ms: int | None) -> None:
    """Make `sinks` ready for a run whose events are stamped `first_ms` .. `last_ms`.

    A `LedgeredSink` closed by an earlier run is reopened now, so that it reports a ledger of
    this run even when the run hands it no event. With the timestamps known (a backfill run
    of a finite tick count; None otherwise), each sink with ``check_timestamps(first_ms,
    last_ms)`` checks them before any event, so a sink whose backend would reject them
    (Kafka's timestamp limits) refuses the run at its start rather than in its middle."""
    sinks = list(sinks)
    for sink in sinks:
        if isinstance(sink, LedgeredSink) and sink.closed:
            sink.reopen()
    if first_ms is None or last_ms is None:
        return
    for sink in sinks:
        check = sink_method(sink, "check_timestamps")
        if check is not None:
            check(first_ms, last_ms)


def close_all(sinks: Iterable[Any]) -> tuple[list[BaseException], BaseException | None]:
    """Close every sink exactly once (see the module docstring)."""
    errors: list[BaseException] = []
    interrupt: BaseException | None = None
    for sink in sinks:
        close = getattr(sink, "close", None)
        if close is None:
            continue
        try:
            close()
        except SinkError as exc:
            errors.append(exc)
        except Exception as exc:
            wrapped = SinkError(f"sink {sink_name(sink)} failed to close: {exc!r}")
            wrapped.__cause__ = exc
            errors.append(wrapped)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: after the others
            if interrupt is None:
                interrupt = exc
            else:
                errors.append(exc)
    return errors, interrupt


def ledgers_of(
    sinks: Iterable[Any], order: Sequence[Transition], handed: Sequence[int]
) -> list[DeliveryLedger]:
    """Each sink's own ledger, or one built from what the engine handed it (`handed[j]`
    moves of transition `order[j]`)."""
    counts: dict[int, int] = {}
    for transition, count in zip(order, handed, strict=True):
        for sink in transition.event_sinks:
            counts[id(sink)] = counts.get(id(sink), 0) + int(count)
    out = []
    for sink in sinks:
        ledger = ledger_of(sink)
        if ledger is None:
            count = counts.get(id(sink), 0)
            ledger = DeliveryLedger(sink_name(sink), count, count, 0)
        out.append(ledger)
    return out


def raise_close_errors(
    errors: list[BaseException], interrupt: BaseException | None, ledgers: list[DeliveryLedger]
) -> None:
    """Raise the interrupt (the close errors as its notes), else the one close error, else
    a `SinkError` naming all of them; nothing when every sink closed cleanly."""
    if interrupt is not None:
        for error in errors:
            add_note(interrupt, f"closing another sink also failed: {describe(error)}")
        raise interrupt
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SinkError("; ".join(str(e) for e in errors), ledgers) from errors[0]
