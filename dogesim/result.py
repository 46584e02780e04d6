"""`RunResult`: what a `Simulation` run returns.

The seed (to replay the run), occupancy and moves per transition per row of `record_every`
ticks (one row per tick unless the run is long: tables stay under ~10k rows), exact totals of
moves, events, attempts and vetoes per transition, the delivery ledger of every sink, the
wall time, and for live and stoppable runs whether it stopped, how far behind real time it
fell and how many subjects arrived. `dogesim.report` turns it into tables and plots.

Moves and events: a *move* is a successful transition of a subject; an *event* is a move on a
transition that feeds at least one sink (counted once per move, however many sinks it feeds).
Moves on transitions without sinks change the occupancy but are not events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dogesim.display import run_result_html
from dogesim.model import Transition
from dogesim.sinks.base import DeliveryLedger

__all__ = ["RunResult"]


@dataclass
class RunResult:
    """The outcome of one `Simulation.run`.

    Attributes:
        seed: the seed of the run; pass it again to reproduce the event stream exactly.
        states: the model's state names (columns of `occupancy`).
        transitions: the model's transitions (columns of `events_per_tick`).
        subjects: number of subjects.
        ticks: number of ticks simulated.
        tick_ms: tick length in milliseconds.
        timestamp_start: timestamp of tick 0 in epoch milliseconds.
        occupancy: ``(rows, states)`` subjects per state after the moves of each row's last
            tick (row ``r`` covers ticks ``r * record_every .. (r + 1) * record_every - 1``).
        events_per_tick: ``(rows, transitions)`` moves per transition in each row's ticks
            (per tick when `record_every` is 1).
        attempts: attempts per transition (moves plus vetoes).
        vetoes: attempts per transition vetoed by the action callback.
        ledgers: the delivery ledger of every sink, in first-use order.
        wall_time: seconds the run took, building this result included.
        stopped: True when the run was stopped (`Simulation.stop`, a signal) before its end.
        max_lag_ms: live mode: the most the run fell behind real time; None otherwise.
        lag_warnings: live mode: ticks handled later than the allowed lag.
        arrivals: subjects that arrived during the run (beyond the initial population).
        record_every: ticks per row of `occupancy` and `events_per_tick`.
        fed: per transition, whether it feeds at least one sink (what `events` counts); kept
            as data so a result that travelled without its sinks (between processes) still
            counts its events. Empty: read from `transitions`.
    """

    seed: int
    states: tuple[str, ...]
    transitions: tuple[Transition, ...]
    subjects: int
    ticks: int
    tick_ms: int
    timestamp_start: int
    initial_state: str
    occupancy: np.ndarray
    events_per_tick: np.ndarray
    attempts: np.ndarray
    vetoes: np.ndarray
    ledgers: list[DeliveryLedger] = field(default_factory=list)
    wall_time: float = 0.0
    stopped: bool = False
    max_lag_ms: float | None = None
    lag_warnings: int = 0
    arrivals: int = 0
    record_every: int = 1
    fed: tuple[bool, ...] = ()
    _repr_html_ = run_result_html  # Jupyter shows a result as tables of counts and ledgers

    @property
    def moves(self) -> int:
        """Total number of successful moves, on any transition."""
        return int(self.events_per_tick.sum())

    @property
    def events(self) -> int:
        """Moves on transitions that feed at least one sink (once per move)."""
        fed = self.fed or tuple(bool(t.event_sinks) for t in self.transitions)
        return int(self.events_per_transition[np.asarray(fed, dtype=bool)].sum()) if fed else 0

    @property
    def events_per_transition(self) -> np.ndarray:
        """Successful moves per transition over the whole run (exact)."""
        return self.events_per_tick.sum(axis=0)

    def row_ticks(self) -> np.ndarray:
        """The last tick of every row of the per-tick tables."""
        ends = (np.arange(len(self.occupancy), dtype=np.int64) + 1) * self.record_every
        return np.minimum(ends, self.ticks) - 1

    def events_by_trigger(self) -> dict[str, int]:
        """Successful moves per trigger name, in first-use order."""
        out: dict[str, int] = {}
        for transition, count in zip(self.transitions, self.events_per_transition, strict=True):
            out[transition.trigger] = out.get(transition.trigger, 0) + int(count)
        return out

    def timestamps(self) -> np.ndarray:
        """The timestamp (epoch ms) of every row's last tick (of every tick when
        `record_every` is 1)."""
        return self.timestamp_start + self.row_ticks() * self.tick_ms

    def summary(self) -> str:
        """A few lines for humans: events per trigger, the ledgers, speed."""
        rate = self.events / self.wall_time if self.wall_time > 0 else float("inf")
        lines = [
            f"seed {self.seed}: {self.subjects} subjects x {self.ticks} ticks of "
            f"{self.tick_ms} ms -> {self.events} events in {self.wall_time:.3f} s "
            f"({rate:,.0f} events/s)"
        ]
        if self.moves != self.events:
            lines.append(
                f"  ({self.moves} moves, {self.moves - self.events} on transitions with no sink)"
            )
        for trigger, count in self.events_by_trigger().items():
            lines.append(f"  {trigger}: {count}")
        lines.extend(f"  sink {ledger.summary()}" for ledger in self.ledgers)
        return "\n".join(lines)
