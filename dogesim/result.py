"""`RunResult`: what a `Simulation` run returns.

The seed (to replay the run), occupancy per tick, events per transition per tick, attempts and
vetoes per transition, the delivery ledger of every sink, the wall time, and for live and
stoppable runs whether it stopped, how far behind real time it fell and how many subjects
arrived. `dogesim.report` turns it into tables and plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
        occupancy: ``(ticks, states)`` counts of subjects per state after each tick's moves.
        events_per_tick: ``(ticks, transitions)`` successful moves per transition and tick.
        attempts: attempts per transition (moves plus vetoes).
        vetoes: attempts per transition vetoed by the action callback.
        ledgers: the delivery ledger of every sink, in first-use order.
        wall_time: seconds the run took.
        stopped: True when the run was stopped (`Simulation.stop`, a signal) before its end.
        max_lag_ms: live mode: the most the run fell behind real time; None otherwise.
        lag_warnings: live mode: ticks handled later than the allowed lag.
        arrivals: subjects that arrived during the run (beyond the initial population).
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

    @property
    def events(self) -> int:
        """Total number of successful moves (events, counted once per move)."""
        return int(self.events_per_tick.sum())

    @property
    def events_per_transition(self) -> np.ndarray:
        """Successful moves per transition over the whole run."""
        return self.events_per_tick.sum(axis=0)

    def events_by_trigger(self) -> dict[str, int]:
        """Successful moves per trigger name, in first-use order."""
        out: dict[str, int] = {}
        for transition, count in zip(self.transitions, self.events_per_transition, strict=True):
            out[transition.trigger] = out.get(transition.trigger, 0) + int(count)
        return out

    def timestamps(self) -> np.ndarray:
        """The timestamp (epoch ms) of every tick."""
        return self.timestamp_start + np.arange(self.ticks, dtype=np.int64) * self.tick_ms

    def summary(self) -> str:
        """A few lines for humans: events per trigger, the ledgers, speed."""
        rate = self.events / self.wall_time if self.wall_time > 0 else float("inf")
        lines = [
            f"seed {self.seed}: {self.subjects} subjects x {self.ticks} ticks of "
            f"{self.tick_ms} ms -> {self.events} events in {self.wall_time:.3f} s "
            f"({rate:,.0f} events/s)"
        ]
        for trigger, count in self.events_by_trigger().items():
            lines.append(f"  {trigger}: {count}")
        lines.extend(f"  sink {ledger.summary()}" for ledger in self.ledgers)
        return "\n".join(lines)
