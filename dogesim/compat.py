"""doge-datagen's API on the dogesim engine: change the import line, keep the program.

- `DataOnlineGenerator`: the doge-datagen generator (``add_transition``, ``start``), now
  seeded, reproducible and paid per event.
- `Subject` (a type variable, as in doge-datagen), `SubjectFactory`, `Transition`,
  `EventSink`, `PrintingSink`: the same names and signatures.

Differences a doge-datagen user may notice, all deliberate: subjects need not be hashable and
equal subjects are never merged; importing dogesim does not configure logging; validation
errors (still `ValueError`) are raised when the model is built and name what is wrong;
``start()`` runs once (a second call raises `RunError`: the sinks are closed by then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from dogesim.engine import RunResult, Simulation, _positive_int, _timestamp
from dogesim.errors import ModelError, RunError
from dogesim.model import Model, Transition
from dogesim.sinks.base import EventSink
from dogesim.sinks.printing import PrintingSink

__all__ = [
    "DataOnlineGenerator",
    "EventSink",
    "PrintingSink",
    "Subject",
    "SubjectFactory",
    "Transition",
]

Subject = TypeVar("Subject")


class SubjectFactory(Generic[Subject]):
    """Creates subjects; subclass it and implement `create` (as in doge-datagen)."""

    def create(self) -> Subject:
        """Return a new subject."""
        raise NotImplementedError(f"{type(self).__name__} must implement create()")


class DataOnlineGenerator(Generic[Subject]):
    """doge-datagen's generator: states, transitions, subjects and ticks, then `start`.

    Args:
        states: every state name.
        initial_state: the state every subject starts in.
        subject_factory: a `SubjectFactory` (or any object with ``create()``, or a callable).
        subjects_num: how many subjects to create.
        tick_ms: tick length in milliseconds.
        ticks_num: how many ticks to simulate.
        timestamp_start: timestamp of the first tick (epoch ms).
        seed: makes the run reproducible, including draws from the global `random` module in
            factories and callbacks; without one a seed is picked and logged.
    """

    STAY_TRIGGER = "__stay"

    def __init__(
        self,
        states: Sequence[str],
        initial_state: str,
        subject_factory: SubjectFactory[Subject] | Callable[[], Subject],
        subjects_num: int,
        tick_ms: int,
        ticks_num: int,
        timestamp_start: int = 0,
        *,
        seed: int | None = None,
    ) -> None:
        self.model = Model(states, initial_state, name="DataOnlineGenerator")
        self.subject_factory = subject_factory
        self.subjects_num = _positive_int(subjects_num, "subjects_num")
        self.tick_ms = _positive_int(tick_ms, "tick_ms")
        self.ticks_num = _positive_int(ticks_num, "ticks_num")
        self.timestamp = _timestamp(timestamp_start)
        if subject_factory is None or (
            not callable(getattr(subject_factory, "create", None)) and not callable(subject_factory)
        ):
            raise ModelError(
                f"subject_factory must have a create() method or be callable, "
                f"got {subject_factory!r}"
            )
        self.seed = seed
        self.simulation: Simulation | None = None
        self.result: RunResult | None = None

    @property
    def states(self) -> list[str]:
        """The state names."""
        return list(self.model.states)

    @property
    def initial_state(self) -> str:
        """The state every subject starts in."""
        return self.model.initial_state

    @property
    def sinks(self) -> list[Any]:
        """Every distinct sink used by a transition, in first-use order."""
        return self.model.sinks()

    @property
    def transition_matrix(self) -> dict[str, dict[str, Transition]]:
        """``{from_state: {trigger: transition}}`` (doge-datagen's attribute, read-only)."""
        return {s: {t.trigger: t for t in self.model.outgoing(s)} for s in self.model.states}

    @property
    def probability_matrix(self) -> dict[str, dict[str, float]]:
        """``{from_state: {trigger: probability}}`` (doge-datagen's attribute, read-only)."""
        return {
            s: {t.trigger: t.probability for t in self.model.outgoing(s)} for s in self.model.states
        }

    def add_transition(
        self,
        trigger: str,
        from_state: str,
        to_state: str,
        probability: float,
        action_callback: Callable[[Subject, Transition], Any] | None = None,
        event_sinks: Sequence[Any] | None = None,
    ) -> Transition:
        """Add a transition; raises `ModelError` (a `ValueError`) naming what is wrong."""
        if self.simulation is not None:
            raise RunError("add_transition() after start(): build a new DataOnlineGenerator")
        return self.model.add_transition(
            trigger, from_state, to_state, probability, action_callback, event_sinks
        )

    def start(self) -> RunResult:
        """Create the subjects, run every tick, close every sink once; return the result."""
        if self.simulation is not None:
            raise RunError(
                "start() already ran and closed the sinks; build a new DataOnlineGenerator "
                "to run again (with the same seed it gives the same events)"
            )
        self.simulation = Simulation(
            self.model,
            self.subjects_num,
            subject_factory=self.subject_factory,
            ticks=self.ticks_num,
            tick_ms=self.tick_ms,
            timestamp_start=self.timestamp,
            seed=self.seed,
        )
        self.result = self.simulation.run()
        return self.result

    @property
    def subjects(self) -> list[Subject]:
        """The subjects of the run, in creation order (empty before `start`)."""
        return list(self.simulation.subjects) if self.simulation else []

    def subject_states(self) -> list[str]:
        """The state of every subject after the run, in creation order."""
        return self.simulation.subject_states() if self.simulation else []
