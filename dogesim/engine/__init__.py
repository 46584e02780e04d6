"""The simulation engine: subjects walk a `Model` on a SimPy clock, paid per event.

- `Simulation`: one run of a model over a population of subjects (`simulation`).
- `RunOptions`, `LiveOptions`: the run settings as frozen value objects (`options`).
- `RunResult`: what a run returns (`dogesim.result`).
- `effective_model`: a model as a run sees it (chances at the run's tick, churn added).
- `sink_name`: how a sink is named in ledgers and errors.
- `current_time`: the timestamp of the attempt being handled (for callbacks).
- `SEED_VARIABLE`: ``DOGESIM_SEED``, the seed of runs whose code gives none.

The pieces, one job each: `options` (settings), `tables` (the model compiled), `population`
(subjects and their states), `scheduler` (the calendar of due subjects), `arrivals` (when
newcomers come), `walker` (the SimPy process that advances the clock), `attempts` (what due
subjects do in a tick), `batching` (which sinks take events one by one, which a tick's
events in one ``collect_many`` call), `services` (SimPy resources: queues, grants, holds),
`recorder` (per-tick counts at a resolution -> `RunResult`), `uniforms` (buffered draws for
quiet ticks, the same stream as unbuffered), `checkpoint` (save and resume), `closing`
(sinks made ready before the first event, every sink closed once), `dwell` (initial mixes,
dwell and delay laws, per-subject rates), `clock` (the time callbacks read).

How it stays cheap. In the per-tick definition (doge-datagen's loop) every subject draws once
per tick and, with probability ``P_s = sum(p_i)/100``, attempts a transition of its state ``s``.
The number of quiet ticks before the next attempt is therefore geometric with parameter
``P_s`` and memoryless, so the engine draws it once — ``floor(ln U / ln(1 - P_s))`` — and files
the subject in a calendar of due subjects under that tick. A SimPy process walks the calendar
from one non-empty tick (subjects due or newcomers coming) to the next; each due subject
picks transition ``i`` with probability ``p_i / sum(p)``, runs its callback, moves, feeds the
sinks, and is filed again. Cost grows with the number of attempts, not with subjects x ticks,
and the stream is exact in distribution.
Within a tick subjects are handled in creation order; events are stamped
``timestamp_start + t * tick_ms``.
"""

from __future__ import annotations

from dogesim.engine.clock import current_time
from dogesim.engine.closing import sink_name
from dogesim.engine.options import (
    SEED_VARIABLE,
    LiveOptions,
    RunOptions,
    _positive_int,
    _timestamp,
)
from dogesim.engine.simulation import Simulation
from dogesim.engine.tables import effective_model
from dogesim.result import RunResult

__all__ = [
    "SEED_VARIABLE",
    "LiveOptions",
    "RunOptions",
    "RunResult",
    "Simulation",
    "_positive_int",
    "_timestamp",
    "current_time",
    "effective_model",
    "sink_name",
]
