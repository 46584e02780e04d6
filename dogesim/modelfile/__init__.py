"""Model files: a whole run declared in YAML, loaded into a `ModelSpec` that builds it.

- `load_model_file(path, ...)`: read and validate a model file; every error is a `ModelError`
  that starts with ``file:line: key:`` and says what would be right.
- `load_model_text(text, ...)`: the same from a string (tests, notebooks).
- `ModelSpec`: the loaded run: states, transitions, tick length, ticks, start time, seed,
  subjects and sinks. ``spec.model`` is the bare `Model`; ``spec.simulation()`` builds a
  ready `Simulation` with fresh sinks; ``spec.run()`` runs it; ``spec.resume(checkpoint)``
  continues a stopped run into the file's sinks, opened for appending.
  ``spec.options(**overrides)`` gives the run's settings as the frozen `RunOptions` and
  `LiveOptions` the engine takes (the file's, with `RUN_OVERRIDES` such as ``seed=`` or
  ``record_every=`` in their place; an unknown name is refused, named).
- `TransitionSpec`, `SubjectsSpec`, `SinkSpec`, `LiveSpec`: the parts of a `ModelSpec`.
- `SINK_TYPES`: the sink types a model file can name, with the settings each accepts.
- `DISTRIBUTIONS`, `AttributeSubjectFactory`: subject attributes drawn with the run's seed.
- `subject_key`: the default Kafka key (the subject's id).
- `parse_duration`, `format_duration`, `parse_timestamp`: ``500ms``/``1s``/``1m``/``1h``/``1d``
  tick lengths and ISO-8601 or epoch-ms start times.
- `dump_model(...)`: write a model file (used by ``dogesim fit``).

- `shipped_models()`, `resolve_model(name)`, `starter_model(name)`: the example models that
  ship in the package (``dogesim/models``), a bare name resolved to one of them, and the
  starter file ``dogesim init`` writes.

Modules: `source` (YAML with line numbers, errors naming file:line:key, ``${ENV}``, scalar
readers), `subjects`, `sinks`, `online` (rates, profiles, resources, arrivals, churn, live),
`spec` (`ModelSpec`, loading), `shipped` (the packaged models) and `writer` (`dump_model`);
`payloads` (templates, Faker, faults, state tables) and `entities` (several entity types).

The format, by example (``models/`` has complete ones)::

    name: banking
    seed: 42                        # optional; the same seed gives the same events
    states: [offline, online, loan_screen]
    initial_state: offline
    tick: 1m                        # 500ms, 1s, 1m, 1h, 1d, or an int of milliseconds
    ticks: 1000
    start: 2024-01-01T00:00:00Z     # ISO-8601 (UTC when no zone is given) or epoch ms
    subjects:
      count: 10
      factory: dogesim.examples.banking:UserFactory     # or `attributes:` (below)
    sinks:
      events: {type: jsonl, path: out/banking.jsonl, mapper: dogesim.examples.banking:event_record}
    default_sinks: [events]         # for transitions that list no `sinks:`
    transitions:
      - {trigger: login, from: offline, to: online, probability: 0.1}
      - {trigger: income, from: offline, to: offline, probability: 0.01,
         callback: dogesim.examples.banking:income_callback, sinks: [events]}

Subjects without a factory are ``SimpleNamespace`` objects with an ``id`` (0, 1, 2, ...)
and the attributes drawn from simple distributions with the run's seed::

    attributes:
      id: {sequence: 1000}          # 1000, 1001, ... (the default id starts at 0)
      budget: {uniform: [10, 500]}  # float in [low, high)
      visits: {uniform_int: [0, 9]} # integer in [low, high], both ends included (int64)
      age: {normal: [40, 12]}       # mean, standard deviation
      segment: {choice: [new, returning]}            # or {choice: {new: 3, returning: 1}}
      country: {constant: PL}       # a plain value is a constant too

Strings may use ``${ENV_VAR}`` and ``${ENV_VAR:-default}`` (``$${`` is a literal ``${``); a
value that is exactly one ``${...}`` may stand for a number or a boolean. Relative schema
paths are read relative to the model file; output paths are relative to the working
directory. Booleans are YAML 1.2's ``true``/``false`` only, so a state or trigger may be
called ``on``, ``off``, ``yes`` or ``no``; duplicate keys are errors.

Online and realistic runs (each key optional; ``models/support_center.yaml`` uses them all)::

    probability_tick: 1m            # per-tick probabilities are per this tick; a run at
                                    # another `tick:` rescales them: p' = 1 - (1 - p)^(dt'/dt)
    profiles:                       # calendar multipliers, named for transitions to share
      office_hours:
        hourly: [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
        weekly: [1, 1, 1, 1, 1, 0, 0]                # Monday first
        dates: {2026-12-25: 0}                       # holidays, paydays
        utc_offset_hours: 1                          # hours are local hours
    resources: {agents: 5}          # shared SimPy resources transitions may hold
    arrivals: {rate: 30 per hour, profile: office_hours}  # or a number per tick, or rate text
    churn: {rate: 2% per day, sinks: [events]}     # or rate text / % per tick; -> `churned`
    jitter: true                    # spread timestamps within their tick
    record_every: 1h                # one row of the result's per-tick tables per hour
                                    # (ticks, or a duration in whole ticks; default: chosen
                                    # so a table has at most 10,000 rows)
    live: {enabled: false, speed: 60, max_lag: 5s, on_lag: warn, timestamps: wall,
           until_stopped: false}    # real-time pacing (the CLI's --live turns it on)
    transitions:
      - {trigger: call, from: idle, to: waiting, probability: 0.5% per hour,
         profile: office_hours}    # a rate: '0.1% per minute', '6 per day', '6/1d'
      - {trigger: answer, from: waiting, to: talking, probability: 90,
         resource: agents, hold: 12m}   # hold: ticks, or a duration in whole ticks
      - {trigger: browse, from: idle, to: idle, probability: 1,
         profile: {hourly: [...24 numbers...]}}      # or a profile inline

Limits, so that any file is refused or loaded in bounded time and memory: nesting at most
64 levels; YAML aliases add at most 100,000 values; integers at most 40 digits; times within
years 1-9999 (also the run's last tick); ``ticks`` at most 2**31 - 1; subjects (``count``
plus the expected arrivals) at most 999,999,999. A required key set to null is missing.
URL passwords and the values of settings named like secrets (``sasl.password``) are masked
(``***``) in messages, reprs and summaries (`dogesim.redact`); so is a ``${VAR}`` value
whose variable is named like a secret (``${DB_PASSWORD}``), that is such a setting's value,
or that lands in a URL's password. Other ``${VAR}`` values (a topic, a path) are shown.

Sinks (``type:`` may be left out when the sink is named after its type): ``jsonl``/``csv``
(``path``, ``mapper``), ``printing``/``stdout`` (``template`` such as
``"{timestamp} {subject.id} {trigger}"``, or a ``format`` function; JSON lines by default),
``memory``, ``counting``, ``kafka`` (``bootstrap_servers``, ``topic``, ``client_id``,
``conf`` with librdkafka's dotted keys passed through untouched, ``key``/``value``
functions), ``kafka_avro`` (also ``schema_registry_url``, ``key_schema``, ``value_schema``),
``db`` (``url``, ``table``, ``mapper``, ``batch_size``, ``create_table``, ``schema``).
Functions are ``module:name`` import paths, resolved when the file is loaded. A ``state_table``
sink (``url``, ``table``, ``columns``, ``create_table``) keeps one row per subject: it must
feed every transition, and learns the initial and final states from the model.

Templates, Faker, faults and entity types (`payloads`, `entities`; ``models/shop.yaml`` uses
them all, with no Python)::

    faker: {locale: de_DE}          # the Faker locale of every template (or a list)
    sinks:
      orders:
        type: kafka                 # key/value/mapper/format given as a mapping: a template
        key: {subject: id}          # (fields: subject, transition, time, seq, const, expr,
        value:                      #  faker, ref, object; see dogesim.templates)
          id: {subject: id}
          at: {time: iso}
          total: {expr: "round(subject.quantity * subject.unit_price, 2)"}
        faults: {duplicate: 1%, late: 2%, delay: {exponential: 300000}, drop: 0,
                 malformed: 0}      # reproducible, each counted in the sink's ledger
    subjects:
      attributes:
        name: {faker: name}         # a directive mapping is a template; others distributions
    entities:                       # or populations:, instead of states/subjects/transitions
      customers: {subjects: ..., states: ..., initial_state: ..., transitions: ...}
      orders:                       # runs after customers; refers to those that exist
        subjects:
          attributes: {customer_id: {pick: customers, by: zipf, s: 1.1}}
"""

from __future__ import annotations

from dogesim.modelfile.online import LiveSpec
from dogesim.modelfile.shipped import resolve_model, shipped_models, starter_model
from dogesim.modelfile.sinks import SINK_TYPES, SinkSpec, subject_key
from dogesim.modelfile.source import parse_timestamp
from dogesim.modelfile.spec import (
    RUN_OVERRIDES,
    ModelSpec,
    TransitionSpec,
    load_model_file,
    load_model_text,
)
from dogesim.modelfile.subjects import DISTRIBUTIONS, AttributeSubjectFactory, SubjectsSpec
from dogesim.modelfile.writer import dump_model
from dogesim.rates import format_duration, parse_duration

__all__ = [
    "DISTRIBUTIONS",
    "RUN_OVERRIDES",
    "SINK_TYPES",
    "AttributeSubjectFactory",
    "LiveSpec",
    "ModelSpec",
    "SinkSpec",
    "SubjectsSpec",
    "TransitionSpec",
    "dump_model",
    "format_duration",
    "load_model_file",
    "load_model_text",
    "parse_duration",
    "parse_timestamp",
    "resolve_model",
    "shipped_models",
    "starter_model",
    "subject_key",
]
