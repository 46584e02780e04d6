"""The example models that ship inside the package, and starter model files.

- `MODELS_DIR`: the folder of the shipped model files (``dogesim/models``; the checkout's
  top-level ``models`` is a link to it).
- `shipped_models()`: the shipped models by name (file stem), sorted.
- `model_description(path)`: a model file's one-line description.
- `resolve_model(text)`: a model file path, or the shipped model a bare name means.
- `starter_model(name)`: the text of a small model file to start from (``dogesim init``).

A bare name (``banking``, ``banking.yaml``) means a shipped model only when no file of that
name exists in the working directory, so a user's own file always wins.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

__all__ = [
    "MODELS_DIR",
    "model_description",
    "resolve_model",
    "shipped_models",
    "starter_model",
]

#: Where the shipped model files are (inside the installed package).
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"

#: What a model name may be: it becomes a file name and the model's ``name:``.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def shipped_models() -> dict[str, Path]:
    """The shipped model files by name (their stem), sorted by name."""
    if not MODELS_DIR.is_dir():
        return {}
    return {path.stem: path for path in sorted(MODELS_DIR.glob("*.yaml"))}


def model_description(path: str | os.PathLike[str]) -> str:
    """The ``description:`` of the model file at `path` (its first comment line when it
    has none, else an empty string), read without validating the file."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        return " ".join(data["description"].split())
    for line in text.splitlines():
        if line.startswith("#") and line.strip("# "):
            return line.strip("# ")
    return ""


def resolve_model(text: str) -> str:
    """`text` when it names an existing file (or is not a bare name), else ``text.yaml`` when
    that file exists here (``dogesim init NAME`` then ``dogesim run NAME``), else the path of
    the shipped model it names (``banking`` or ``banking.yaml``), else `text` unchanged
    (loading it then reports the missing file). A file of the name here always wins."""
    if Path(text).is_file() or os.sep in text or (os.altsep and os.altsep in text):
        return text
    if not text.endswith(".yaml") and Path(text + ".yaml").is_file():
        return text + ".yaml"
    stem = text[: -len(".yaml")] if text.endswith(".yaml") else text
    shipped = shipped_models().get(stem)
    return str(shipped) if shipped is not None else text


def starter_model(name: str) -> str:
    """A small, valid model file named `name`: three states, per-minute rates, a JSON Lines
    sink, subject attributes, every line commented.

    Raises:
        ValueError: `name` is not a short identifier (letters, digits, ``_``, ``-``).
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a model name; use letters, digits, '_' and '-' (at most 64), "
            "starting with a letter, e.g. checkout_flow"
        )
    return _STARTER.format(name=name)


_STARTER = """\
# {name}: a starter model. Run it with `dogesim run {name}.yaml`, check it with
# `dogesim validate {name}.yaml`, draw it with `dogesim graph {name}.yaml`.
# Every key is described in the README's "Model files" section; the shipped models
# (`dogesim models`) show more (rates, calendar profiles, arrivals, churn, resources).
name: {name}
description: visitors arrive offline, go online, browse, and log out
seed: 42                          # the same seed gives the same events, byte for byte
states: [offline, online, browsing]
initial_state: offline
tick: 1m                          # one tick is a minute
ticks: 1440                       # one day
start: 2024-01-01T00:00:00Z
subjects:
  count: 1000
  attributes:
    id: {{sequence: 1}}
    segment: {{choice: {{new: 3, returning: 1}}}}
sinks:
  events: {{type: jsonl, path: out/{name}.jsonl}}
default_sinks: [events]
transitions:                      # probability: percent per tick, or a rate
  - {{trigger: login, from: offline, to: online, probability: 1% per minute}}
  - {{trigger: browse, from: online, to: browsing, probability: 30}}
  - {{trigger: back, from: browsing, to: online, probability: 40}}
  - {{trigger: logout, from: online, to: offline, probability: 20}}
"""
