"""Pictures of a model's state machine: Graphviz DOT and Mermaid text, PNG through Graphviz.

- `to_dot(model)`: the state machine as Graphviz DOT text (no dependency).
- `to_mermaid(model)`: the same as a Mermaid ``stateDiagram-v2`` (renders on GitHub, in
  Jupyter with a Mermaid extension, and in most Markdown viewers).
- `render_png(model, path)`: a PNG through the Graphviz ``dot`` program; a clear error when it
  is not installed.
- `DataOnlineGeneratorGrapher`: doge-datagen's grapher (``generate_graph()`` returns a
  ``graphviz.Digraph``; needs the ``graphviz`` Python package). This module is also
  doge-datagen's ``doge_datagen.graph`` path, so `DataOnlineGenerator` is importable from it.

Every function takes a `Model`, a doge-datagen style `DataOnlineGenerator`, or a loaded
`ModelSpec` (anything with a ``model`` attribute holding a `Model`). Edges are labelled
``trigger (p%)``; the initial state is drawn bold, final states with a double border.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from typing import Any

from dogesim.compat import DataOnlineGenerator
from dogesim.errors import DogesimError
from dogesim.model import Model

__all__ = [
    "DataOnlineGenerator",
    "DataOnlineGeneratorGrapher",
    "render_png",
    "to_dot",
    "to_mermaid",
]


def _model_of(thing: Any) -> Model:
    if isinstance(thing, Model):
        return thing
    model = getattr(thing, "model", None)
    if isinstance(model, Model):
        return model
    raise DogesimError(
        f"cannot draw {type(thing).__name__}: give a Model, a DataOnlineGenerator or a ModelSpec"
    )


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(trigger: str, probability: float) -> str:
    return f"{trigger} ({probability:g}%)"


def _doge_percent(probability: float) -> str:
    """A percentage as doge-datagen's grapher prints what programs give it: ``70``, ``0.1``
    (whole numbers without ``.0``: the model stores them as floats)."""
    value = float(probability)
    return str(int(value)) if value.is_integer() else repr(value)


def to_dot(model: Any, *, name: str | None = None) -> str:
    """The state machine as Graphviz DOT text."""
    m = _model_of(model)
    lines = [f"digraph {_dot_id(name or m.name)} {{", "  rankdir=LR;", "  node [shape=ellipse];"]
    for state in m.states:
        attrs = []
        if state == m.initial_state:
            attrs.append("style=bold")
        if m.is_final(state):
            attrs.append("peripheries=2")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_id(state)}{suffix};")
    for t in m.transitions:
        lines.append(
            f"  {_dot_id(t.from_state)} -> {_dot_id(t.to_state)} "
            f"[label={_dot_id(_label(t.trigger, t.probability))}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_id(state: str, ids: dict[str, str]) -> str:
    if state not in ids:
        safe = "".join(c if c.isalnum() or c == "_" else "_" for c in state) or "state"
        candidate = safe
        while candidate in ids.values():
            candidate += "_"
        ids[state] = candidate
    return ids[state]


def to_mermaid(model: Any) -> str:
    """The state machine as a Mermaid ``stateDiagram-v2``."""
    m = _model_of(model)
    ids: dict[str, str] = {}
    lines = ["stateDiagram-v2"]
    for state in m.states:
        sid = _mermaid_id(state, ids)
        if sid != state:
            lines.append(f'    state "{state}" as {sid}')
    lines.append(f"    [*] --> {_mermaid_id(m.initial_state, ids)}")
    for t in m.transitions:
        label = _label(t.trigger, t.probability).replace(":", " ")
        lines.append(
            f"    {_mermaid_id(t.from_state, ids)} --> {_mermaid_id(t.to_state, ids)}: {label}"
        )
    for state in m.states:
        if m.is_final(state):
            lines.append(f"    {_mermaid_id(state, ids)} --> [*]")
    return "\n".join(lines) + "\n"


def render_png(model: Any, path: str | os.PathLike[str], *, dot: str | None = None) -> None:
    """Draw the state machine to a PNG file with the Graphviz ``dot`` program.

    Raises:
        DogesimError: ``dot`` is not installed or failed.
    """
    program = dot or shutil.which("dot")
    if program is None:
        raise DogesimError(
            "PNG output needs the Graphviz 'dot' program, which is not on PATH; install "
            "Graphviz (e.g. apt-get install graphviz) or write DOT/Mermaid text instead"
        )
    try:
        subprocess.run(
            [program, "-Tpng", "-o", os.fspath(path)],
            input=to_dot(model).encode("utf-8"),
            check=True,
            capture_output=True,
            timeout=60,
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode("utf-8", "replace").strip()
        raise DogesimError(f"Graphviz 'dot' failed writing {os.fspath(path)}: {detail}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DogesimError(f"cannot run Graphviz 'dot' ({program}): {exc}") from exc


class DataOnlineGeneratorGrapher:
    """doge-datagen's grapher: draws a generator's state machine with Graphviz.

    Args:
        generator: a `DataOnlineGenerator`, a `Model` or a `ModelSpec`.
    """

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.model = _model_of(generator)

    def to_dot(self) -> str:
        """The graph as DOT text (needs nothing installed)."""
        return to_dot(self.model)

    def to_mermaid(self) -> str:
        """The graph as Mermaid text."""
        return to_mermaid(self.model)

    def generate_graph(self) -> Any:
        """A ``graphviz.Digraph`` of the state machine.

        Raises:
            DogesimError: the ``graphviz`` Python package is not installed (use `to_dot`).
        """
        try:
            graphviz = importlib.import_module("graphviz")
        except ImportError:
            raise DogesimError(
                "generate_graph() needs the 'graphviz' Python package (pip install graphviz); "
                "without it, DataOnlineGeneratorGrapher(...).to_dot() gives the same graph as "
                "DOT text"
            ) from None
        # Unnamed, and the probability as given: the same DOT source doge-datagen makes.
        graph = graphviz.Digraph()
        for state in self.model.states:
            graph.node(state)
        # Edges grouped by source state, as doge-datagen walks its transition matrix.
        for t in (t for state in self.model.states for t in self.model.outgoing(state)):
            graph.edge(
                t.from_state, t.to_state, label=f"{t.trigger}(P={_doge_percent(t.probability)}%)"
            )
        return graph

    def render(self, filename: str = "doctest-output/out.gv", *, view: bool = False) -> str:
        """Render the graph to a PNG next to `filename` (needs graphviz and ``dot``)."""
        graph = self.generate_graph()
        try:
            return str(graph.render(filename, format="png", view=view))
        except Exception as exc:
            raise DogesimError(
                f"rendering {filename} failed: {exc}; install Graphviz's 'dot' program, or use "
                "to_dot()"
            ) from exc
