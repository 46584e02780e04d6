"""Sharded runs: seeds, subjects, merged files, executors, failures, and the law.

The model builders are module-level functions (bound with `functools.partial`), so spawned
worker processes import them by name.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import subprocess
import sys
import threading
import types
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from dogesim import CountingSink, Model, Rate, RunError, SinkError
from dogesim.errors import ModelError
from dogesim.examples.banking import UserFactory, build_banking_model
from dogesim.scale.parts import part_path
from dogesim.scale.plan import share_arrivals
from dogesim.shards import (
    Shard,
    ShardedRun,
    default_shards,
    run_sharded,
    shard_seeds,
)
from tests.unit.shard_models import (
    banking_run,
    banking_to_jsonl,
    faulty_in_shard,
)

ROOT = Path(__file__).resolve().parents[2]


# -- model builders (picklable) ---------------------------------------------------------------


def banking_to_csv(path: str, shard: Shard) -> Model:
    """The banking model, every event into this shard's part of the CSV `path`."""
    return build_banking_model([shard.csv(path)])


def chain(shard: Shard) -> Model:
    """A three-state chain with no sinks or callbacks (the law test)."""
    model = Model(["a", "b", "c"], "a", name="chain")
    for trigger, source, target, p in CHAIN:
        model.add_transition(trigger, source, target, p)
    return model


CHAIN = (
    ("ab", "a", "b", 20.0),
    ("ac", "a", "c", 5.0),
    ("ba", "b", "a", 30.0),
    ("bc", "b", "c", 10.0),
    ("ca", "c", "a", 15.0),
)


def queueing(shard: Shard) -> Model:
    """A model whose subjects share a resource."""
    model = Model(["idle", "busy"], "idle", name="queueing", resources={"desk": 1})
    model.add_transition("take", "idle", "busy", 10, resource="desk")
    model.add_transition("leave", "busy", "idle", 50)
    return model


class _Boom(ValueError):
    pass


def _explode_at(tick_ms: int, at: int) -> Any:
    def callback(subject: Any, transition: Any) -> bool:
        raise _Boom(f"callback failed for subject {subject.id}")

    return callback


def failing_in_shard(bad: int, path: str, shard: Shard) -> Model:
    """Banking into a file, but shard `bad`'s login callback raises."""
    model = Model(["off", "on"], "off", name="failing")
    callback = _explode_at(0, 0) if shard.index == bad else None
    sink = shard.jsonl(path)
    model.add_transition("login", "off", "on", 5, callback, [sink])
    model.add_transition("logout", "on", "off", 50, None, [sink])
    return model


def banking_file_run(path: Path, shards: int, **changes: Any) -> ShardedRun:
    """The small banking run into the file `path`."""
    return banking_run(functools.partial(banking_to_jsonl, str(path)), shards, **changes)


def small(build: Any, subjects: int, shards: int, **changes: Any) -> ShardedRun:
    """A run of `build` with `subjects` in `shards` (300 one-second ticks, seed 5)."""
    settings: dict[str, Any] = {"ticks": 300, "tick_ms": 1000, "seed": 5, **changes}
    return ShardedRun(build, subjects=subjects, shards=shards, **settings)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- plan: seeds, shares, defaults --------------------------------------------------------------


def test_shard_seeds_come_from_seed_sequence_spawn() -> None:
    """Shard k's seed is the first 64-bit word of SeedSequence(seed).spawn(S)[k], shifted."""
    seeds = shard_seeds(42, 3)
    expected = [
        int(child.generate_state(1, np.uint64)[0]) >> 1
        for child in np.random.SeedSequence(42).spawn(3)
    ]
    assert seeds == expected
    assert len(set(seeds)) == 3 and all(0 <= s < 2**63 for s in seeds)


def test_default_shards_depend_on_population_only() -> None:
    """The default number of shards is fixed by the population: 1, then 8 per million, <= 64."""
    assert [default_shards(n) for n in (1, 19_999, 20_000, 1_000_000, 1_000_001, 10**9)] == [
        1,
        1,
        8,
        8,
        16,
        64,
    ]


def test_arrivals_share_is_rate_over_shards() -> None:
    """A shard gets rate / S of the arrivals, for numbers, rates and rate text."""
    assert share_arrivals(6.0, 4) == 1.5
    assert share_arrivals(Rate.per(30, "1h"), 3) == Rate.per(10, "1h")
    assert share_arrivals("30 per hour", 2) == Rate.per(15, "1h")
    assert share_arrivals(None, 2) is None
    with pytest.raises(ModelError, match="arrivals"):
        share_arrivals(-1.0, 2)


def test_more_shards_than_subjects_is_refused(tmp_path: Path) -> None:
    """shards > subjects is a ModelError naming both numbers, before anything runs."""
    with pytest.raises(ModelError, match=r"shards=8 but the run has 5 subjects"):
        run_sharded(banking_file_run(tmp_path / "x.jsonl", 8, subjects=5))
    assert list(tmp_path.iterdir()) == []


# -- subjects: global ids ---------------------------------------------------------------------


def test_default_subjects_have_global_striped_ids(tmp_path: Path) -> None:
    """Without a factory, shard k's subjects are ids k, k+S, ...: together exactly 0..n-1."""
    out = tmp_path / "ids.jsonl"

    result = run_sharded(small(functools.partial(chain_to_jsonl, str(out)), 103, 4, ticks=200))
    ids = {line["subject"]["id"] for line in _lines(out)}
    assert ids == set(range(103))
    assert result.subjects == 103
    assert [r.result.subjects for r in result.shard_results if r.result] == [26, 26, 26, 25]


def chain_to_jsonl(path: str, shard: Shard) -> Model:
    """The chain with every event into this shard's part of `path`."""
    model = Model(["a", "b", "c"], "a", name="chain")
    sink = shard.jsonl(path)
    for trigger, source, target, p in CHAIN:
        model.add_transition(trigger, source, target, p, event_sinks=[sink])
    return model


def test_factory_counter_ids_are_renumbered_globally(tmp_path: Path) -> None:
    """UserFactory counts 0, 1, ... per shard; the user ids become the global 0..n-1."""
    out = tmp_path / "bank.jsonl"
    run_sharded(banking_file_run(out, 3, subjects=60, ticks=3000))
    ids = {line["user"]["user_id"] for line in _lines(out)}
    assert ids <= set(range(60)) and len(ids) > 50


def test_factories_are_made_as_simulation_makes_them(tmp_path: Path) -> None:
    """A subject class is called per subject; a factory object is copied per shard (two
    in-process runs give the same bytes, its counter not carried from shard to shard)."""
    out = tmp_path / "ns.jsonl"
    build = functools.partial(chain_to_jsonl, str(out))
    run_sharded(small(build, 40, 2, subject_factory=types.SimpleNamespace))
    assert {json.dumps(line["subject"]) for line in _lines(out)} == {"{}"}
    first, again = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    factory = UserFactory()
    run_sharded(banking_file_run(first, 3, subject_factory=factory))
    run_sharded(banking_file_run(again, 3, subject_factory=factory))
    assert first.read_bytes() == again.read_bytes() and factory.current_id == 0


# -- merged files: deterministic, any number of workers ----------------------------------------


def test_merged_jsonl_is_byte_identical_for_1_2_and_4_workers(tmp_path: Path) -> None:
    """At fixed S the merged JSONL is the same bytes for 1 (in-process), 2 and 4 processes."""
    outputs = []
    for workers in (1, 2, 4):
        out = tmp_path / f"w{workers}.jsonl"
        result = run_sharded(banking_file_run(out, 4), workers=workers)
        assert result.shards == 4 and result.workers == min(workers, 4)
        assert result.ledgers[0].acknowledged == result.events == len(out.read_bytes().splitlines())
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w1.jsonl", "w2.jsonl", "w4.jsonl"]


def test_merged_file_is_ordered_by_timestamp_then_shard(tmp_path: Path) -> None:
    """Merged lines are ordered by (timestamp, shard): within a tick shard 0's users first."""
    out = tmp_path / "bank.jsonl"
    run_sharded(banking_file_run(out, 3))
    keys = [(line["timestamp"], line["user"]["user_id"] % 3) for line in _lines(out)]
    assert keys == sorted(keys)


def test_same_seed_same_bytes_other_shards_other_stream(tmp_path: Path) -> None:
    """The stream is a function of (model, seed, S): equal when repeated, different for S."""
    first, again, other = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    run_sharded(banking_file_run(first, 3))
    run_sharded(banking_file_run(again, 3))
    run_sharded(banking_file_run(other, 2))
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_csv_parts_merge_with_one_header(tmp_path: Path) -> None:
    """A merged CSV has one header line and every shard's rows, in timestamp order."""
    out = tmp_path / "bank.csv"
    build = functools.partial(banking_to_csv, str(out))
    result = run_sharded(small(build, 500, 3, subject_factory=UserFactory, tick_ms=60_000))
    lines = out.read_text().splitlines()
    assert lines[0].startswith("timestamp,trigger,from_state,to_state,subject.user_id")
    assert sum(line.startswith("timestamp,") for line in lines) == 1
    assert len(lines) - 1 == result.events
    stamps = [int(line.split(",", 1)[0]) for line in lines[1:]]
    assert stamps == sorted(stamps)


def test_model_file_shards_merge_its_jsonl_sink(tmp_path: Path) -> None:
    """models/banking.yaml in 2 shards: in-process and 2 processes write the same merged file,
    ids are global, and the result's ledger counts its lines."""
    environ = {"DOGESIM_OUT_DIR": str(tmp_path)}
    run = ShardedRun(
        str(ROOT / "models" / "banking.yaml"), subjects=400, seed=9, shards=2, environ=environ
    )
    inline = run_sharded(run)
    first = (tmp_path / "banking.jsonl").read_bytes()
    processes = run_sharded(run, workers=2)
    assert (tmp_path / "banking.jsonl").read_bytes() == first
    assert inline.events == processes.events == len(first.splitlines())
    ids = {line["user"]["user_id"] for line in _lines(tmp_path / "banking.jsonl")}
    assert ids <= set(range(400)) and max(ids) >= 390
    assert [ledger.acknowledged for ledger in inline.ledgers] == [inline.events]


def test_model_file_attribute_ids_are_renumbered_globally(tmp_path: Path) -> None:
    """models/ecommerce.yaml's ``id: {sequence: 100000}`` in 3 shards: ids 100000.. of the
    whole run, each shard's striped (shard k holds 100000 + k, + 3, ...)."""
    run = ShardedRun(
        str(ROOT / "models" / "ecommerce.yaml"),
        subjects=90,
        ticks=300,
        seed=1,
        shards=3,
        environ={"DOGESIM_OUT_DIR": str(tmp_path)},
    )
    run_sharded(run)
    ids = {line["subject"]["id"] for line in _lines(tmp_path / "ecommerce.jsonl")}
    assert ids <= set(range(100_000, 100_090)) and len(ids) > 80


# -- the merged result -------------------------------------------------------------------------


def test_result_tables_are_the_sums_of_the_shards(tmp_path: Path) -> None:
    """Occupancy, events, attempts and vetoes of the result are the shards' sums."""
    result = run_sharded(banking_file_run(tmp_path / "b.jsonl", 3))
    parts = [r.result for r in result.shard_results if r.result is not None]
    assert len(parts) == 3
    np.testing.assert_array_equal(result.occupancy, sum(p.occupancy for p in parts))
    np.testing.assert_array_equal(result.events_per_tick, sum(p.events_per_tick for p in parts))
    np.testing.assert_array_equal(result.vetoes, sum(p.vetoes for p in parts))
    assert result.occupancy[-1].sum() == 3000
    assert result.vetoes[result.transitions.index(_trigger(result, "spending"))] > 0
    assert all(not t.event_sinks and t.action_callback is None for t in result.transitions)
    assert result.summary().endswith("3 shards on 1 worker(s): in this process")
    assert result.events_by_trigger()["login"] == sum(p.events_by_trigger()["login"] for p in parts)


def _trigger(result: Any, name: str) -> Any:
    return next(t for t in result.transitions if t.trigger == name)


# -- the law: S = 1 and S = 8 --------------------------------------------------------------------


def _chain_law(n: int, ticks: list[int]) -> dict[int, np.ndarray]:
    """The exact distribution of one subject's state after each tick in `ticks`."""
    index = {"a": 0, "b": 1, "c": 2}
    step = np.zeros((3, 3))
    for _, source, target, p in CHAIN:
        step[index[source], index[target]] += p / 100
    for s in range(3):
        step[s, s] += 1 - step[s].sum()
    law = {}
    state = np.array([1.0, 0.0, 0.0])
    for t in range(max(ticks) + 1):
        state = state @ step
        if t in ticks:
            law[t] = state.copy()
    return law


def test_one_and_eight_shards_follow_the_same_law() -> None:
    """Occupancy after ticks 4 and 39 is multinomial(n, law) for S=1 and S=8 alike
    (normal bounds, Bonferroni over 2 runs x 2 ticks x 3 states at alpha 1e-3)."""
    n, checked = 40_000, [4, 39]
    law = _chain_law(n, checked)
    z = NormalDist().inv_cdf(1 - 1e-3 / (2 * 2 * 2 * 3))
    for shards in (1, 8):
        result = run_sharded(
            ShardedRun(chain, subjects=n, ticks=40, tick_ms=1000, seed=2024, shards=shards)
        )
        for t in checked:
            expected = n * law[t]
            sd = np.sqrt(n * law[t] * (1 - law[t]))
            deviation = np.abs(result.occupancy[t] - expected) / sd
            assert (deviation < z).all(), (shards, t, result.occupancy[t], expected)


def test_arrivals_keep_their_poisson_total_over_shards() -> None:
    """With arrivals of 3 per tick split over 4 shards, the total is Poisson(3 x ticks)."""
    ticks, rate = 500, 3.0
    result = run_sharded(
        ShardedRun(chain, subjects=8, ticks=ticks, tick_ms=1000, seed=8, shards=4, arrivals=rate)
    )
    mean = rate * ticks
    assert abs(result.arrivals - mean) < 4.5 * math.sqrt(mean)
    assert result.occupancy[-1].sum() == 8 + result.arrivals


# -- refusals and failures -----------------------------------------------------------------------


def test_models_with_shared_resources_are_refused_for_more_than_one_shard() -> None:
    """A builder's model with resources: ModelError for S=2 naming them; S=1 runs."""
    with pytest.raises(ModelError, match=r"share the resources \['desk'\].*shards=1"):
        run_sharded(ShardedRun(queueing, subjects=10, ticks=20, tick_ms=1000, seed=1, shards=2))
    result = run_sharded(
        ShardedRun(queueing, subjects=10, ticks=20, tick_ms=1000, seed=1, shards=1)
    )
    assert result.moves > 0  # the queueing model feeds no sink: moves, not events


def test_model_file_with_resources_is_refused_before_running(tmp_path: Path) -> None:
    """models/support_center.yaml (agents) in 2 shards: ModelError naming the file."""
    run = ShardedRun(
        str(ROOT / "models" / "support_center.yaml"),
        shards=2,
        environ={"DOGESIM_OUT_DIR": str(tmp_path)},
    )
    with pytest.raises(ModelError, match=r"support_center.yaml: its subjects share the resources"):
        run_sharded(run)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_shard_cancels_the_rest_and_lists_every_shard(tmp_path: Path) -> None:
    """In-process, shard 1's callback raises: shard 0 done, 1 failed, 2 and 3 cancelled;
    SinkError lists them (shard 0's events were never merged, so none is acknowledged); no
    merged file and no part file is left."""
    out = tmp_path / "f.jsonl"
    run = small(functools.partial(failing_in_shard, 1, str(out)), 200, 4, ticks=100)
    with pytest.raises(SinkError) as caught:
        run_sharded(run)
    message = str(caught.value)
    shard0 = [ledger for ledger in caught.value.ledgers if ledger.sink.endswith("[shard 0]")]
    assert len(shard0) == 1 and shard0[0].collected > 0 and shard0[0].acknowledged == 0
    assert "failed at shard 1: _Boom: callback failed" in message
    assert "shard 0 done" in message and "shard 1 failed" in message
    assert "shard 2 cancelled" in message and "shard 3 cancelled" in message
    assert "no merged file was written" in message
    assert list(tmp_path.iterdir()) == []


def endless_unless_cancelled(shard: Shard) -> Model:
    """Shard 0 fails at its first attempt; the others would run for ever (every subject
    moves every tick) unless cancelled."""
    model = Model(["a", "b"], "a", name="endless")
    callback = _explode_at(0, 0) if shard.index == 0 else None
    model.add_transition("go", "a", "b", 100, callback, [CountingSink("counting:go")])
    model.add_transition("back", "b", "a", 100, None, [CountingSink("counting:back")])
    return model


@pytest.mark.timeout(300)
def test_a_failing_shard_stops_the_shards_running_in_other_processes() -> None:
    """With 2 processes, shard 0 fails at once: shard 1, which would need 10^7 ticks, stops
    at a tick boundary (cancelled, its sinks closed with their counts), and the run fails."""
    run = ShardedRun(
        endless_unless_cancelled, subjects=100, ticks=10**7, tick_ms=1000, seed=1, shards=2
    )
    with pytest.raises(RunError) as caught:
        run_sharded(run, workers=2)
    message = str(caught.value)
    assert "failed at shard 0: _Boom" in message
    assert "shard 1 cancelled" in message


def test_ctrl_c_mid_run_removes_every_part_and_propagates(tmp_path: Path) -> None:
    """KeyboardInterrupt in shard 2 (in-process) propagates, after the parts of shards 0-2
    are removed: no merged file, no part left."""
    out = tmp_path / "i.jsonl"
    build = functools.partial(faulty_in_shard, 2, str(out), fault="interrupt")
    with pytest.raises(KeyboardInterrupt):
        run_sharded(banking_run(build, 4))
    assert list(tmp_path.iterdir()) == []


def test_a_killed_worker_fails_the_run_with_its_ledgers(tmp_path: Path) -> None:
    """Shard 1's process is SIGKILLed mid-run: SinkError lists every shard, the killed one
    with no ledger; nothing counts as delivered (the merged file is not written)."""
    out = tmp_path / "k.jsonl"
    run = banking_run(functools.partial(faulty_in_shard, 1, str(out)), 4)
    with pytest.raises(SinkError) as caught:
        run_sharded(run, workers=2)
    error = caught.value
    message = str(error)
    assert "shard 1 lost" in message and "its worker died" in message
    assert "nothing of it is confirmed delivered" in message
    assert not any(ledger.sink.endswith("[shard 1]") for ledger in error.ledgers)
    # The merged output was not written: none of its events counts as acknowledged.
    assert all(ledger.acknowledged == 0 for ledger in error.ledgers if "jsonl:" in ledger.sink)
    assert list(tmp_path.iterdir()) == []
    assert not Path(part_path(str(out), 1, 4)).exists()


def chain_holding(lock: Any, shard: Shard) -> Model:
    """The chain, from a builder bound to an object no pickler can carry."""
    return chain(shard)


def test_an_unpicklable_builder_is_refused_before_processes_start() -> None:
    """A builder bound to a lock, with workers=2: ModelError saying what must be picklable."""
    build = functools.partial(chain_holding, threading.Lock())
    run = ShardedRun(build, subjects=10, ticks=5, tick_ms=1000, shards=2)
    with pytest.raises(ModelError, match=r"cannot be sent to worker processes.*module level"):
        run_sharded(run, workers=2)


def test_a_lambda_builder_runs_in_processes_with_cloudpickle() -> None:
    """With cloudpickle installed, a lambda builder (as in a notebook) runs on 2 processes
    and gives the in-process result."""
    pytest.importorskip("cloudpickle")
    run = ShardedRun(lambda shard: chain(shard), subjects=50, ticks=30, tick_ms=1000, shards=2)
    inline = run_sharded(replace_seed(run))
    processes = run_sharded(replace_seed(run), workers=2)
    np.testing.assert_array_equal(inline.events_per_tick, processes.events_per_tick)


def replace_seed(run: ShardedRun) -> ShardedRun:
    """`run` with seed 77."""
    return dataclasses.replace(run, seed=77)


def test_jittered_stamps_merge_in_timestamp_order(tmp_path: Path) -> None:
    """With jitter, parts hold sub-tick stamps; the merged file is ordered by them."""
    out = tmp_path / "j.jsonl"
    result = run_sharded(small(functools.partial(chain_to_jsonl, str(out)), 300, 3, jitter=True))
    stamps = [line["timestamp"] for line in _lines(out)]
    assert len(stamps) == result.events > 1000
    assert stamps == sorted(stamps) and len(set(stamps)) > 300  # sub-tick stamps


def chain_with_churn(path: str, shard: Shard) -> tuple[Model, list[Any]]:
    """The chain into `path`, churn events into it too (a (model, churn_sinks) pair)."""
    sink = shard.jsonl(path)
    model = Model(["a", "b", "c"], "a", name="chain")
    for trigger, source, target, p in CHAIN:
        model.add_transition(trigger, source, target, p, event_sinks=[sink])
    return model, [sink]


def test_churn_sinks_from_a_builder_pair(tmp_path: Path) -> None:
    """A builder returning (model, churn_sinks): churn events reach the merged file."""
    out = tmp_path / "c.jsonl"
    build = functools.partial(chain_with_churn, str(out))
    result = run_sharded(small(build, 200, 2, churn=1.0))
    churned = [line for line in _lines(out) if line["trigger"] == "churn"]
    assert len(churned) == result.events_by_trigger()["churn"] > 100
    assert result.occupancy[-1][result.states.index("churned")] == len(churned)


def test_dask_without_distributed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """When `distributed` cannot be imported, dask= fails with the extra to install."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(RunError, match=r"pip install 'dogesim\[dask\]'"):
        run_sharded(
            ShardedRun(chain, subjects=10, ticks=5, tick_ms=1000, seed=1, shards=2),
            dask="tcp://127.0.0.1:1",
        )


def test_workers_and_dask_together_are_refused() -> None:
    """workers=N and dask= at once is a RunError."""
    with pytest.raises(RunError, match="not both"):
        run_sharded(
            ShardedRun(chain, subjects=10, ticks=5, tick_ms=1000, seed=1, shards=2),
            workers=2,
            dask="tcp://127.0.0.1:1",
        )


def test_importing_shards_leaves_dask_out() -> None:
    """`import dogesim.shards` imports neither distributed, dask nor cloudpickle."""
    code = (
        "import sys, dogesim.shards; "
        "print([m for m in ('distributed', 'dask', 'cloudpickle') if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]"
