"""The fenced code blocks of the project's README, for the tests that run them.

Holds `Block` (one fenced block: language, first line, text, whether it is marked as a
fragment) and `readme_blocks()`, which reads them from `README.md` at the repository root.
A block preceded by the HTML comment `<!-- fragment -->` is deliberately incomplete: the
tests only check that it parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
FRAGMENT_MARK = "<!-- fragment -->"

# A fence opens with ``` and a language at the start of a line and closes with a bare ```.
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)

#: Text that says a Python block talks to a running broker or database.
SERVICE_MARKERS = ("19092", "postgresql://")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    lang: str
    line: int  # the line of the opening fence, 1-based
    text: str
    fragment: bool

    @property
    def name(self) -> str:
        """`README.md:<line>` — the block's place, used as the test id."""
        return f"README.md:{self.line}"

    @property
    def needs_services(self) -> bool:
        """True when the block names the Kafka broker or a PostgreSQL URL."""
        return any(marker in self.text for marker in SERVICE_MARKERS)


def _preceded_by_fragment_mark(text: str, start: int) -> bool:
    """True when the last non-blank line before `start` is the fragment comment."""
    before = text[:start].rstrip().rsplit("\n", 1)[-1]
    return before.strip() == FRAGMENT_MARK


def readme_blocks(lang: str | None = None, path: Path = README) -> list[Block]:
    """Every fenced block of `path` in order, or only those whose language is `lang`."""
    text = path.read_text(encoding="utf-8")
    blocks = [
        Block(
            lang=match["lang"],
            line=text.count("\n", 0, match.start()) + 1,
            text=match["body"],
            fragment=_preceded_by_fragment_mark(text, match.start()),
        )
        for match in _FENCE.finditer(text)
    ]
    return [block for block in blocks if lang is None or block.lang == lang]
