"""doge-datagen's API on the dogesim engine: change the import line, keep the program.

- `DataOnlineGenerator`: the doge-datagen generator (``add_transition``, ``start``), now
  seeded, reproducible and paid per event.
- `Subject` (a type variable, as in doge-datagen), `SubjectFactory`, `Transition`,
  `EventSink`, `PrintingSink`: the same names and signatures.
- `SubjectStates`: what ``subjects_states`` gives when the subjects are not hashable (a
  read-only mapping keyed by identity).

The attributes doge-datagen programs read keep their meaning: ``subjects_states`` maps each
subject to its current state from the start of the run (empty before), ``timestamp`` is the
current tick's timestamp during a run and ``timestamp_start + ticks_num * tick_ms`` after it,
and once ``start()`` ran, ``transition_matrix`` / ``probability_matrix`` hold a ``__stay``
entry per state (the chance of staying), as doge-datagen's do.

Differences a doge-datagen user may notice, all deliberate: subjects need not be hashable and
equal subjects are never merged in the run (only the ``subjects_states`` dict, keyed by
subject, shows equal hashable subjects as one key, as doge-datagen's did); ``subjects_states``
and the matrices are fresh read-only snapshots, not dicts to write into; ``sinks`` is a list
in first-use order (doge-datagen: a set); importing dogesim does not configure logging;
validation errors (still `ValueError`) are raised when the model is built and name what is
wrong; ``tick_ms`` is a whole number of milliseconds; ``start()`` runs once (a second call
raises `RunError`: the sinks are closed by then).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    "SubjectStates",
    "Transition",
]

Subject = TypeVar("Subject")


class SubjectFactory(Generic[Subject]):
    """Creates subjects; subclass it and implement `create` (as in doge-datagen)."""

    def create(self) -> Subject:
        """Return a new subject."""
        raise NotImplementedError(f"{type(self).__name__} must implement create()")


class SubjectStates(Mapping[Any, str]):
    """Each subject's state, keyed by the subject object itself (by identity).

    ``subjects_states`` returns a plain dict, as doge-datagen does, when the subjects can be
    dict keys; subjects that cannot (a ``@dataclass`` without ``__hash__``) run on dogesim
    all the same, and then this read-only mapping stands in, in creation order.
    """

    def __init__(self, subjects: Sequence[Any], states: Sequence[str]) -> None:
        self._subjects = list(subjects)
        self._states = list(states)
        self._index = {id(s): i for i, s in enumerate(self._subjects)}

    def __getitem__(self, subject: Any) -> str:
        index = self._index.get(id(subject))
        if index is None:
            raise KeyError(subject)
        return self._states[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._subjects)

    def __len__(self) -> int:
        return len(self._subjects)


def _subject_maker(subject_factory: object) -> Callable[[], Any]:
    """How to make one subject: ``factory.create`` when the factory has one, even when the
    factory is also callable (a ``Mock(SubjectFactory)`` is), else the factory itself."""
    create = getattr(subject_factory, "create", None)
    if callable(create):
        # A plain function, so that the engine cannot mistake `create` itself for a factory
        # (a Mock's create has a .create too).
        def make_subject() -> Any:
            return create()

        return make_subject
    if subject_factory is not None and callable(subject_factory):
        return subject_factory
    raise ModelError(
        f"DataOnlineGenerator: subject_factory must have a create() method or be callable, "
        f"got {subject_factory!r}"
    )


def _tick_length(tick_ms: object) -> int:
    """`tick_ms` as a whole number of milliseconds >= 1, or a `ModelError` saying why."""
    if not isinstance(tick_ms, bool) and isinstance(tick_ms, (int, float)) and 0 < tick_ms < 1:
        raise ModelError(
            f"DataOnlineGenerator: tick_ms must be a whole number of milliseconds >= 1, got "
            f"{tick_ms!r}: timestamps are integer epoch milliseconds (timestamp_start + "
            f"tick * tick_ms); for sub-millisecond ticks count time in a finer unit (e.g. "
            f"tick_ms=1 meaning 1 microsecond, timestamps then in microseconds)"
        )
    return _positive_int(tick_ms, "DataOnlineGenerator: tick_ms")


class DataOnlineGenerator(Generic[Subject]):
    """doge-datagen's generator: states, transitions, subjects and ticks, then `start`.

    Args:
        states: every state name.
        initial_state: the state every subject starts in.
        subject_factory: a `SubjectFactory` (or any object with ``create()``, which is then
            what is called), or a callable returning a new subject.
        subjects_num: how many subjects to create.
        tick_ms: tick length in whole milliseconds (at least 1).
        ticks_num: how many ticks to simulate.
        timestamp_start: timestamp of the first tick (epoch ms).
        seed: makes the run reproducible, including draws from the global `random` module in
            factories and callbacks (it is re-seeded from the run's seed). Without one, the
            ``DOGESIM_SEED`` environment variable is used; without that, the run's seed is
            drawn from the global `random` module, so a program that calls
            ``random.seed(N)`` first gets the same events on every run, as on doge-datagen.
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
        self._create_subject = _subject_maker(subject_factory)
        self.subjects_num = _positive_int(subjects_num, "DataOnlineGenerator: subjects_num")
        self.tick_ms = _tick_length(tick_ms)
        self.ticks_num = _positive_int(ticks_num, "DataOnlineGenerator: ticks_num")
        self.timestamp_start = _timestamp(timestamp_start)
        self.seed = seed
        self.simulation: Simulation | None = None
        self.result: RunResult | None = None
        self._stay: dict[str, Transition] = {}

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
    def timestamp(self) -> int:
        """The clock as doge-datagen keeps it: `timestamp_start` before the run, the current
        tick's timestamp during it, ``timestamp_start + ticks_num * tick_ms`` after it."""
        if self.simulation is None:
            return self.timestamp_start
        if self.result is not None:
            return self.timestamp_start + self.ticks_num * self.tick_ms
        # A fresh Simulation's SimPy clock counts ticks from 0 (no jitter here).
        tick = min(math.floor(self.simulation.env.now), self.ticks_num)
        return self.timestamp_start + tick * self.tick_ms

    @timestamp.setter
    def timestamp(self, value: int) -> None:
        if self.simulation is not None:
            raise RunError("DataOnlineGenerator: timestamp can only be set before start()")
        self.timestamp_start = _timestamp(value)

    @property
    def transition_matrix(self) -> dict[str, dict[str, Transition]]:
        """``{from_state: {trigger: transition}}``, plus a ``__stay`` transition per state
        once `start` ran (doge-datagen's attribute; read-only here)."""
        matrix = {s: {t.trigger: t for t in self.model.outgoing(s)} for s in self.model.states}
        for state, stay in self._stay.items():
            matrix[state][self.STAY_TRIGGER] = stay
        return matrix

    @property
    def probability_matrix(self) -> dict[str, dict[str, float]]:
        """``{from_state: {trigger: probability}}``, with ``__stay`` once `start` ran."""
        return {
            s: {trigger: t.probability for trigger, t in row.items()}
            for s, row in self.transition_matrix.items()
        }

    @property
    def subjects_states(self) -> Mapping[Any, str]:
        """Each subject's current state, in creation order: filled when `start` creates the
        subjects, kept after the run, empty before (doge-datagen's attribute).

        A plain dict, as on doge-datagen, when the subjects are hashable (equal subjects then
        share one key there, as they did); a `SubjectStates` otherwise. Each read builds a
        fresh snapshot of every subject: a callback should read it once, not per subject.
        """
        simulation = self.simulation
        if simulation is None:
            return {}
        try:
            states = simulation.subject_states()
        except AttributeError:  # still creating the subjects: no states yet
            return {}
        subjects = simulation.subjects
        if len(states) != len(subjects):  # still creating the subjects
            return {}
        try:
            return dict(zip(subjects, states, strict=True))
        except TypeError:  # unhashable subjects
            return SubjectStates(subjects, states)

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
            subject_factory=self._create_subject,
            ticks=self.ticks_num,
            tick_ms=self.tick_ms,
            timestamp_start=self.timestamp_start,
            seed=self.seed,
        )
        self._stay = self._stay_transitions(self.simulation.model)
        self.result = self.simulation.run()
        return self.result

    def _stay_transitions(self, model: Model) -> dict[str, Transition]:
        """doge-datagen's ``__stay`` transition of every state: the chance of no move."""
        return {
            state: Transition(
                self.STAY_TRIGGER, state, state, 100.0 - model.leave_probability(state)
            )
            for state in model.states
        }

    @property
    def subjects(self) -> list[Subject]:
        """The subjects of the run, in creation order (empty before `start`)."""
        return list(self.simulation.subjects) if self.simulation else []

    def subject_states(self) -> list[str]:
        """The state of every subject after the run, in creation order."""
        return self.simulation.subject_states() if self.simulation else []
