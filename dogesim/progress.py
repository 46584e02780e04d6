"""Progress of a run where people watch it: a widget in Jupyter, a text bar elsewhere.

- `ProgressBar`: a progress hook (``simulation.progress``) drawing a ``tqdm.auto`` bar over
  the run's ticks, with events per second and every ledger's counts beside it.
- `ledger_status`: that one line of events so far, their rate and the ledgers' counts.
- `ledgers_of`: the ledgers of a simulation's sinks (sinks that keep none are left out).

``tqdm.auto`` picks the notebook widget inside Jupyter (with ``ipywidgets``, in the
``notebooks`` extra) and the text bar in a terminal, so one call serves both::

    sim = banking_simulation([JsonLinesSink("out/banking.jsonl")], subjects=10_000, ticks=1440)
    result = ProgressBar(sim).run()   # the bar ends with the ledgers after the sinks closed

or, as a plain hook, ``sim.progress = ProgressBar(sim)`` (the bar closes at the last tick;
the sinks close after it, so their final acknowledgements are in ``result.ledgers``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

from dogesim.sinks.base import DeliveryLedger, ledger_of

__all__ = ["ProgressBar", "ledger_status", "ledgers_of"]

#: Seconds between refreshes of the events/s and ledger figures beside the bar.
REFRESH_S = 0.5


def ledgers_of(simulation: Any) -> list[DeliveryLedger]:
    """The ledgers of the simulation's distinct sinks, in the model's order."""
    found = (ledger_of(sink) for sink in simulation.model.sinks())
    return [ledger for ledger in found if ledger is not None]


def ledger_status(ledgers: Sequence[DeliveryLedger], elapsed: float) -> str:
    """``1,200 events (2,400/s); jsonl:out.jsonl: 0 acknowledged of 1,200``: what the
    ledgered sinks collected so far and how fast, and each one's counts."""
    if not ledgers:
        return "no sink keeps a ledger"
    collected = sum(ledger.collected for ledger in ledgers)
    what = "events" if len(ledgers) == 1 else f"deliveries to {len(ledgers)} sinks"
    counts = "; ".join(
        f"{ledger.sink}: {ledger.acknowledged:,} acknowledged of {ledger.collected:,}"
        + (f", {ledger.failed:,} failed" if ledger.failed else "")
        for ledger in ledgers
    )
    return f"{collected:,} {what} ({collected / max(elapsed, 1e-9):,.0f}/s); {counts}"


class ProgressBar:
    """A ``tqdm.auto`` bar over a run's ticks; call it with the ticks done.

    Args:
        simulation: the run to follow: gives the tick count and the sinks' ledgers, and
            gets the bar as its ``progress`` hook (unless `attach` is False).
        total: the ticks, when there is no `simulation` (None: a counter without an end).
        ledgers: the ledgers to show, when there is no `simulation`.
        file: where a text bar goes (default: standard error); a widget ignores it.
        attach: set ``simulation.progress`` to this bar.
        leave: keep the finished bar on screen.

    The bar is drawn at the first call. `run` runs the simulation and closes the bar after
    the sinks closed; as a plain hook the bar closes itself at the last tick, and `close` (or
    the ``with`` block) closes it when a run stops early.
    """

    def __init__(
        self,
        simulation: Any = None,
        *,
        total: int | None = None,
        ledgers: Sequence[DeliveryLedger] = (),
        file: TextIO | None = None,
        attach: bool = True,
        leave: bool = True,
    ) -> None:
        self.total = total if simulation is None else simulation.ticks
        self.ledgers = list(ledgers) if simulation is None else ledgers_of(simulation)
        self.file = file
        self.leave = leave
        self.done = 0
        self.bar: Any = None
        self.closed = False
        self._started = 0.0
        self._next_status = 0.0
        self._simulation = simulation
        self._running = False  # inside `run`: it closes the bar after the sinks
        if simulation is not None and attach:
            simulation.progress = self

    def run(self) -> Any:
        """Run the simulation with this bar, then show the ledgers as the sinks left them
        (a file sink acknowledges its lines when it is closed) and close the bar.

        Returns:
            The simulation's `RunResult`; its errors propagate (the bar is closed).
        """
        if self._simulation is None:
            raise TypeError("ProgressBar.run needs the simulation: ProgressBar(simulation).run()")
        self._simulation.progress = self
        self._running = True
        try:
            return self._simulation.run()
        finally:
            self._running = False
            if self.bar is not None and not self.closed:
                self.bar.set_postfix_str(self.status(), refresh=True)
            self.close()

    def _open(self) -> Any:
        from tqdm.auto import tqdm

        self._started = time.monotonic()
        self._next_status = self._started + REFRESH_S
        return tqdm(
            total=self.total, unit="tick", file=self.file, leave=self.leave, mininterval=0.25
        )

    def __call__(self, done: int) -> None:
        """The engine's hook: `done` ticks are done (after every busy tick)."""
        if self.closed:
            return
        if self.bar is None:
            self.bar = self._open()
        step = done - self.done
        self.done = done
        if step > 0:
            self.bar.update(step)
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if now >= self._next_status or finished:
            self._next_status = now + REFRESH_S
            self.bar.set_postfix_str(self.status(now), refresh=finished)
        if finished and not self._running:
            self.close()

    def status(self, now: float | None = None) -> str:
        """Events so far and per second, and each ledger's counts (`ledger_status`)."""
        elapsed = (time.monotonic() if now is None else now) - self._started
        return ledger_status(self.ledgers, elapsed)

    def close(self) -> None:
        """Close the bar (a second call does nothing)."""
        if self.bar is not None and not self.closed:
            self.bar.close()
        self.closed = True

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
