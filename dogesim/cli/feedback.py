"""What ``dogesim run`` tells while and after it runs, and how it stops on a signal.

- `_Feedback`: the progress bar (a terminal) or status lines (a log, CI, a pipe) on stderr;
  `STATUS_EVERY_S` is the interval of the status lines.
- `closing_line(simulation)`: what became of the run's sinks, as their ledgers tell it;
  `_print_ledgers(simulation, err)` prints each ledger.
- `_print_speed(result, wall, destination, out)`: the summary's wall-time line.
- `_raised_where(exc)`: an exception and where it was raised, in one line.
- `_stop_on_signals(simulation)`: the first SIGINT/SIGTERM stops the run after its tick.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

#: Seconds between status lines on stderr when it is not a terminal (logs, CI, pipes).
STATUS_EVERY_S = 10.0

#: Seconds between refreshes of the progress bar's events/s and ledger figures.
_BAR_REFRESH_S = 0.5


def _ledgers(simulation: Any) -> tuple[list[Any], int]:
    """The ledgers of the run's distinct sinks, and how many of its sinks keep none."""
    from dogesim.sinks.base import ledger_of

    ledgers = []
    plain = 0
    for sink in simulation.model.sinks():
        ledger = ledger_of(sink)
        if ledger is None:
            plain += 1
        else:
            ledgers.append(ledger)
    return ledgers, plain


def closing_line(simulation: Any) -> str:
    """What became of the run's sinks, as the ledgers tell it: "every sink was closed and
    flushed" only when every ledger shows nothing lost; else the sinks that lost events,
    with their counts."""
    ledgers, plain = _ledgers(simulation)
    lost = [ledger for ledger in ledgers if not ledger.ok]
    if lost:
        named = "; ".join(
            f"{ledger.sink} lost {ledger.lost:,} of {ledger.collected:,} events "
            f"({ledger.failed:,} failed, {ledger.pending:,} pending)"
            for ledger in lost
        )
        return f"the sinks were closed, but not everything was delivered: {named}"
    if plain:
        kept = f"the ledgers of {len(ledgers)} show nothing lost; " if ledgers else ""
        return (
            f"every sink was closed ({kept}{plain} keep no ledger, so their delivery is not "
            "counted)"
        )
    return "every sink was closed and flushed"


def _print_ledgers(simulation: Any, err: TextIO) -> None:
    """One ``  sink ...`` line per sink that keeps a ledger."""
    from dogesim.sinks.base import ledger_of

    for sink in simulation.model.sinks():
        ledger = ledger_of(sink)
        if ledger is not None:
            print(f"  sink {ledger.summary()}", file=err)


def _print_speed(result: Any, wall: float, destination: str, out: TextIO) -> None:
    """``wall time ... s: N events (R events/s), M moves; events -> DESTINATION``."""
    rate = result.events / wall if wall > 0 else float("inf")
    print(
        f"wall time {wall:.3f} s: {result.events:,} events ({rate:,.0f} events/s), "
        f"{result.moves:,} moves; events -> {destination}",
        file=out,
    )


def _raised_where(exc: BaseException) -> str:
    """``Type: message (at file:line in function)`` for the innermost frame of `exc`."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (at {last.filename}:{last.lineno} in {last.name})"
    return text


class _Feedback:
    """Progress of a run on stderr: on a terminal a tqdm bar whose postfix shows events/s
    and the ledgers; elsewhere (a log, CI, a pipe) one status line every `every` seconds;
    nothing when quiet.

    Events so far are what the ledgered sinks collected: with one ledgered sink that is
    the run's events; with several, their deliveries are summed and called so.
    """

    def __init__(
        self,
        simulation: Any,
        stream: TextIO,
        *,
        quiet: bool,
        tty: bool | None = None,
        every: float = STATUS_EVERY_S,
    ) -> None:
        from tqdm import tqdm

        self.total: int | None = simulation.ticks
        self.stream = stream
        self.ledgers = _ledgers(simulation)[0]
        self.quiet = quiet
        self.tty = _isatty(stream) if tty is None else tty
        self.every = every if not self.tty else _BAR_REFRESH_S
        self.started = time.monotonic()
        self.next_status = self.started + self.every
        self.bar = tqdm(
            total=self.total,
            unit="tick",
            file=stream,
            delay=1.0,
            mininterval=0.25,
            disable=quiet or not self.tty,
            leave=False,
            dynamic_ncols=True,
        )
        self.done = 0

    def update(self, done: int) -> None:
        """Called by the engine with the ticks done (after every busy tick): cheap unless a
        refresh is due."""
        self.done = done
        if self.quiet:
            return
        step = done - self.bar.n
        if step > 0 and self.tty:
            self.bar.update(step)
        now = time.monotonic()
        if now < self.next_status:
            return
        self.next_status = now + self.every
        if self.tty:
            self.bar.set_postfix_str(self.status(now), refresh=False)
        else:
            print(f"dogesim: {self.position()}, {self.status(now)}", file=self.stream, flush=True)

    def position(self) -> str:
        """``tick 500/1,440 (34%)``, or ``tick 500`` for a run without a tick count."""
        if self.total:
            return f"tick {self.done:,}/{self.total:,} ({100 * self.done // self.total}%)"
        return f"tick {self.done:,}"

    def status(self, now: float | None = None) -> str:
        """Events so far and per second, and each ledger's counts (the notebooks' line too)."""
        from dogesim.progress import ledger_status

        return ledger_status(
            self.ledgers, (time.monotonic() if now is None else now) - self.started
        )

    def close(self) -> None:
        self.bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextlib.contextmanager
def _stop_on_signals(simulation: Any) -> Iterator[list[str]]:
    """While the block runs, the first SIGINT/SIGTERM asks `simulation` to stop after the tick
    in progress; a second one raises `KeyboardInterrupt` (stop at once, sinks still closed).

    Yields the names of the signals received. Outside the main thread (where Python cannot
    install handlers) signals keep their usual effect.
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if len(received) > 1:
            raise KeyboardInterrupt
        simulation.stop()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, handler)
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
