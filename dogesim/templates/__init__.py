"""Payload templates: events described as nested mappings of fields, compiled to mappers.

- `Template`, `compile_template`: a template checked once and compiled into a fast
  ``(timestamp, subject, transition) -> payload`` mapper per run (`dogesim.templates.compile`).
- `TemplateSubjectFactory`: subjects whose attributes come from a template.
- `new_run_counter`: the counter the mappers of one run share for ``{seq: run}``.
- `DIRECTIVES`: the field directives and their options (`dogesim.templates.fields`).

Example::

    from dogesim.templates import compile_template

    value = compile_template(
        {
            "user": {"id": {"subject": "id"}, "name": {"faker": "name"}},
            "event": {"transition": "trigger"},
            "at": {"time": "iso"},
            "n": {"seq": "event"},
            "fee": {"expr": "round(subject.balance * 0.01, 2)"},
        },
        seed=42,
        path="sinks.events.value",
    )
    sink = JsonLinesSink("events.jsonl", value)

Faker is needed only by templates with ``faker`` fields (``pip install 'dogesim[faker]'``).
"""

from __future__ import annotations

from dogesim.templates.compile import (
    Template,
    TemplateSubjectFactory,
    compile_template,
    new_run_counter,
)
from dogesim.templates.fields import DIRECTIVES

__all__ = [
    "DIRECTIVES",
    "Template",
    "TemplateSubjectFactory",
    "compile_template",
    "new_run_counter",
]
