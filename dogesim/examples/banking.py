"""The banking model of the doge-datagen README, in Python.

- `User`, `UserFactory`: bank users with a balance and a loan balance.
- `income_callback`, `spending_callback`, `take_loan_callback`: the README's callbacks; they
  draw from the global `random` module, as the original does.
- `STATES`, `TRANSITIONS`: the states and the transition table (trigger, from, to, %).
- `build_banking_model(sinks)`: the model, with sinks per trigger.
- `banking_simulation(...)`: a ready `Simulation` of it.
- `event_record(...)`: the README's Kafka value of one event, as a dict.
- `event_row(...)`: the README's database row of one event, flat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from random import randrange
from typing import Any

from dogesim.compat import SubjectFactory
from dogesim.engine import Simulation
from dogesim.model import Model, Transition

__all__ = [
    "STATES",
    "TRANSITIONS",
    "User",
    "UserFactory",
    "banking_simulation",
    "build_banking_model",
    "event_record",
    "event_row",
    "income_callback",
    "spending_callback",
    "take_loan_callback",
]


@dataclass
class User:
    """A bank user: an id, an account balance, a loan balance and the last payment."""

    user_id: int
    balance: int
    loan_balance: int
    last_payment: int


class UserFactory(SubjectFactory[User]):
    """Creates users with ids 0, 1, 2, ... and a random opening balance below 1000."""

    def __init__(self) -> None:
        super().__init__()
        self.current_id = 0

    def create(self) -> User:
        """A new user."""
        user = User(self.current_id, randrange(0, 1000), 0, 0)
        self.current_id += 1
        return user


def income_callback(subject: User, transition: Transition) -> bool:
    """Salary arrives: 500 to 2000 more on the account."""
    subject.balance += randrange(500, 2000)
    return True


def spending_callback(subject: User, transition: Transition) -> bool:
    """A card payment of 10 to 100; vetoed when the balance does not cover it."""
    payment = randrange(10, 100)
    if payment > subject.balance:
        return False
    subject.balance -= payment
    subject.last_payment = payment
    return True


def take_loan_callback(subject: User, transition: Transition) -> bool:
    """A loan of 10000 is paid out."""
    subject.loan_balance += 10000
    subject.balance += 10000
    return True


STATES = ("offline", "online", "loan_screen")

#: (trigger, from_state, to_state, probability %, callback)
TRANSITIONS: tuple[tuple[str, str, str, float, Callable[[Any, Transition], bool] | None], ...] = (
    ("income", "offline", "offline", 0.01, income_callback),
    ("spending", "offline", "offline", 0.1, spending_callback),
    ("login", "offline", "online", 0.1, None),
    ("logout", "online", "offline", 70, None),
    ("open_loan_screen", "online", "loan_screen", 30, None),
    ("close_loan_screen", "loan_screen", "online", 40, None),
    ("take_loan", "loan_screen", "online", 10, take_loan_callback),
)


def build_banking_model(
    sinks: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
    *,
    callbacks: bool = True,
) -> Model:
    """The banking model.

    Args:
        sinks: sinks for every transition (a list), or per trigger (``{trigger: [sinks]}``).
        callbacks: attach the README's callbacks (False gives the bare Markov chain).
    """
    model = Model(STATES, "offline", name="banking")
    for trigger, source, target, probability, callback in TRANSITIONS:
        if sinks is None:
            chosen: Sequence[Any] = ()
        elif isinstance(sinks, Mapping):
            chosen = sinks.get(trigger, ())
        else:
            chosen = sinks
        model.add_transition(
            trigger, source, target, probability, callback if callbacks else None, chosen
        )
    return model


def banking_simulation(
    sinks: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
    *,
    subjects: int = 10,
    ticks: int = 1000,
    tick_ms: int = 60_000,
    timestamp_start: int = 0,
    seed: int | None = None,
    callbacks: bool = True,
) -> Simulation:
    """A `Simulation` of the banking model (defaults: the README's 10 users x 1000 minutes)."""
    return Simulation(
        build_banking_model(sinks, callbacks=callbacks),
        subjects,
        subject_factory=UserFactory(),
        ticks=ticks,
        tick_ms=tick_ms,
        timestamp_start=timestamp_start,
        seed=seed,
    )


def event_record(timestamp: int, user: User, transition: Transition) -> dict[str, Any]:
    """The README's Kafka value as a dict: timestamp, user fields and the trigger."""
    return {
        "timestamp": timestamp,
        "user": {
            "user_id": user.user_id,
            "balance": user.balance,
            "loan_balance": user.loan_balance,
        },
        "event": transition.trigger,
    }


def event_row(timestamp: int, user: User, transition: Transition) -> dict[str, Any]:
    """The README's database row: timestamp, the user's fields and the trigger, flat."""
    return {
        "timestamp": timestamp,
        "user_id": user.user_id,
        "balance": user.balance,
        "loan_balance": user.loan_balance,
        "event": transition.trigger,
    }
