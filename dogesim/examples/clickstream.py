"""A dense clickstream model: every state moves with at least 50% per tick.

- `STATES`, `TRANSITIONS`: a landing/browse/product/cart/checkout funnel.
- `build_clickstream_model(sinks)`: the model, every transition feeding `sinks`.

Dense models are where skipping quiet ticks gains nothing; the engine must still keep up
with (and beat) a plain per-tick loop on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dogesim.model import Model

__all__ = ["STATES", "TRANSITIONS", "build_clickstream_model"]

STATES = ("landing", "browse", "product", "cart", "checkout")

#: (trigger, from_state, to_state, probability %)
TRANSITIONS: tuple[tuple[str, str, str, float], ...] = (
    ("browse", "landing", "browse", 60),
    ("bounce", "landing", "landing", 20),
    ("view_product", "browse", "product", 35),
    ("scroll", "browse", "browse", 25),
    ("back_home", "browse", "landing", 10),
    ("add_to_cart", "product", "cart", 30),
    ("back_to_list", "product", "browse", 40),
    ("checkout", "cart", "checkout", 35),
    ("keep_shopping", "cart", "browse", 30),
    ("pay", "checkout", "landing", 50),
    ("abandon", "checkout", "landing", 20),
)


def build_clickstream_model(sinks: Sequence[Any] = ()) -> Model:
    """The clickstream model with `sinks` on every transition."""
    model = Model(STATES, "landing", name="clickstream")
    for trigger, source, target, probability in TRANSITIONS:
        model.add_transition(trigger, source, target, probability, event_sinks=sinks)
    return model
