"""doge-datagen programs run on dogesim with only their import line changed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dogesim import DataOnlineGenerator, PrintingSink, RunError, Transition

# The README/examples program of doge-datagen, with `doge_datagen` replaced by `dogesim`.
DOGE_PROGRAM = textwrap.dedent(
    """
    import sys
    from dataclasses import dataclass
    from random import randrange

    from dogesim import DataOnlineGenerator, PrintingSink, Subject, SubjectFactory, Transition


    @dataclass
    class User:
        user_id: int
        balance: int
        loan_balance: int
        last_payment: int

        def __hash__(self):
            return self.user_id


    class UserFactory(SubjectFactory[User]):
        def __init__(self):
            super().__init__()
            self.current_id = 0

        def create(self) -> User:
            user = User(self.current_id, randrange(0, 1000), 0, 0)
            self.current_id += 1
            return user


    def income_callback(subject: User, transition: Transition):
        subject.balance += randrange(500, 2000)
        return True


    def spending_callback(subject: User, transition: Transition):
        payment = randrange(10, 100)
        if payment > subject.balance:
            return False
        subject.balance -= payment
        subject.last_payment = payment
        return True


    def take_loan_callback(subject: User, transition: Transition):
        subject.loan_balance += 10000
        subject.balance += 10000
        return True


    def format_function(timestamp: int, user: Subject, transition: Transition) -> str:
        return ('[{}] User id: {}, balance: {}, loan_balance: {} '
                'made a transition {} from {} to {}').format(
            timestamp, user.user_id, user.balance, user.loan_balance,
            transition.trigger, transition.from_state, transition.to_state)


    if __name__ == '__main__':
        sink = PrintingSink(format_function)
        datagen = DataOnlineGenerator(['offline', 'online', 'loan_screen'], 'offline',
                                      UserFactory(), 10, 60000, 1000)
        datagen.add_transition('income', 'offline', 'offline', 0.01,
                               action_callback=income_callback, event_sinks=[sink])
        datagen.add_transition('spending', 'offline', 'offline', 0.1,
                               action_callback=spending_callback, event_sinks=[sink])
        datagen.add_transition('login', 'offline', 'online', 0.1, event_sinks=[sink])
        datagen.add_transition('logout', 'online', 'offline', 70, event_sinks=[sink])
        datagen.add_transition('open_loan_screen ', 'online', 'loan_screen', 30,
                               event_sinks=[sink])
        datagen.add_transition('close_loan_screen', 'loan_screen', 'online', 40,
                               event_sinks=[sink])
        datagen.add_transition('take_loan', 'loan_screen', 'online', 10,
                               action_callback=take_loan_callback, event_sinks=[sink])
        datagen.start()
    """
)


def _run_program(tmp_path: Path, seed: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the unchanged program; `seed` goes in through DOGESIM_SEED, not the code."""
    script = tmp_path / "doge_example.py"
    script.write_text(DOGE_PROGRAM)
    env = {k: v for k, v in os.environ.items() if k != "DOGESIM_SEED"}
    if seed is not None:
        env["DOGESIM_SEED"] = seed
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_reference_program_runs_unchanged(tmp_path: Path) -> None:
    """The doge-datagen banking example runs and prints doge-formatted lines."""
    done = _run_program(tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) > 5
    assert all(line.startswith("[") and "made a transition" in line for line in lines)
    stamps = [int(line[1 : line.index("]")]) for line in lines]
    assert stamps == sorted(stamps)
    assert all(ts % 60000 == 0 and 0 <= ts < 1000 * 60000 for ts in stamps)


def test_unchanged_program_is_reproducible_with_dogesim_seed(tmp_path: Path) -> None:
    """DOGESIM_SEED makes the unchanged program print the same lines on every run."""
    first = _run_program(tmp_path, seed="2024")
    second = _run_program(tmp_path, seed="2024")
    other = _run_program(tmp_path, seed="2025")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout != other.stdout
    assert len(first.stdout.splitlines()) > 5


def test_bad_dogesim_seed_is_a_clear_error(tmp_path: Path) -> None:
    """A DOGESIM_SEED that is not a non-negative integer is named in the error."""
    done = _run_program(tmp_path, seed="forty-two")
    assert done.returncode != 0
    assert "DOGESIM_SEED must be a non-negative integer, got 'forty-two'" in done.stderr


def test_seed_argument_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit seed= is used even when DOGESIM_SEED is set; without one the env is used."""
    monkeypatch.setenv("DOGESIM_SEED", "17")
    gen = DataOnlineGenerator(["a"], "a", lambda: object(), 1, 1, 1, seed=5)
    assert gen.start().seed == 5
    gen = DataOnlineGenerator(["a"], "a", lambda: object(), 1, 1, 1)
    assert gen.start().seed == 17


def test_import_leaves_logging_and_heavy_modules_alone() -> None:
    """`import dogesim` configures no logging and imports no Kafka/SQL/plotting library."""
    code = textwrap.dedent(
        """
        import logging, sys
        import dogesim
        heavy = [m for m in ("confluent_kafka", "sqlalchemy", "matplotlib", "pandas",
                             "psycopg", "fastavro", "scipy") if m in sys.modules]
        print(heavy, logging.getLogger().handlers, logging.getLogger().level)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] [] 30"


def test_lazy_names_resolve_on_first_use() -> None:
    """Optional sink factories are reachable from the package once their module loads."""
    import dogesim

    assert "KafkaSinkFactory" in dir(dogesim)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        dogesim.Nope  # noqa: B018


def test_start_twice_raises_clear_error() -> None:
    """start() runs once; a second call says why and what to do."""
    gen = DataOnlineGenerator(["a", "b"], "a", lambda: object(), 2, 1000, 3, seed=1)
    gen.add_transition("go", "a", "b", 100)
    result = gen.start()
    assert result.events_by_trigger() == {"go": 2}
    assert gen.subject_states() == ["b", "b"]
    with pytest.raises(RunError, match="start\\(\\) already ran"):
        gen.start()
    with pytest.raises(RunError):
        gen.add_transition("back", "b", "a", 100)


def test_doge_attributes_are_available() -> None:
    """The attributes doge-datagen code (and its grapher) reads are there."""
    sink = PrintingSink(lambda ts, s, t: "")
    gen = DataOnlineGenerator(["a", "b"], "a", lambda: object(), 2, 1000, 3, 500)
    t = gen.add_transition("go", "a", "b", 40, event_sinks=[sink])
    assert isinstance(t, Transition)
    assert (t.trigger, t.from_state, t.to_state, t.probability) == ("go", "a", "b", 40)
    assert t.event_sinks == (sink,)
    assert gen.transition_matrix == {"a": {"go": t}, "b": {}}
    assert gen.probability_matrix == {"a": {"go": 40}, "b": {}}
    assert gen.states == ["a", "b"] and gen.initial_state == "a"
    assert (gen.subjects_num, gen.tick_ms, gen.ticks_num, gen.timestamp) == (2, 1000, 3, 500)
    assert gen.sinks == [sink]
    assert DataOnlineGenerator.STAY_TRIGGER == "__stay"


def test_printing_sink_prints_each_event(capsys: pytest.CaptureFixture[str]) -> None:
    """PrintingSink prints format_function's line per event, to stdout."""
    sink = PrintingSink(lambda ts, s, t: f"{ts}:{t.trigger}")
    gen = DataOnlineGenerator(["a"], "a", lambda: object(), 1, 10, 3, seed=0)
    gen.add_transition("beat", "a", "a", 100, event_sinks=[sink])
    gen.start()
    assert capsys.readouterr().out == "0:beat\n10:beat\n20:beat\n"
    assert sink.ledger.acknowledged == 3


def test_grapher_draws_the_generator() -> None:
    """DataOnlineGeneratorGrapher gives doge-datagen's Digraph (edges labelled trigger(P=p%))
    and DOT text without Graphviz installed."""
    from dogesim import DataOnlineGeneratorGrapher

    gen = DataOnlineGenerator(["offline", "online"], "offline", lambda: object(), 1, 1000, 1)
    gen.add_transition("login", "offline", "online", 0.1)
    gen.add_transition("logout", "online", "offline", 70)
    grapher = DataOnlineGeneratorGrapher(gen)
    source = grapher.generate_graph().source
    assert 'offline -> online [label="login(P=0.1%)"]' in source
    assert 'online -> offline [label="logout(P=70%)"]' in source
    dot = grapher.to_dot()
    assert dot.startswith("digraph") and "login" in dot and "logout" in dot
    assert "stateDiagram" in grapher.to_mermaid()
