"""Rich displays of run results in Jupyter: what a cell ending in ``result`` shows.

- `run_result_html`: a `RunResult` as HTML: a headline (seed, size, events, wall time), a
  table per transition (moves, attempts, vetoes, whether it feeds a sink), a table per state
  (final count and share) and a table of the sinks' delivery ledgers. It is the result's
  ``_repr_html_``. Every name and value is escaped.

No dependency beyond the standard library; the result is only read, never changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dogesim.result import RunResult

__all__ = ["run_result_html"]

#: Inline style of the tables (a notebook's own CSS still applies around it).
_TABLE = 'style="border-collapse:collapse;margin:0.3em 0 0.8em 0"'
_CELL = 'style="padding:0.15em 0.8em;text-align:{align}"'


def _cell(value: Any, tag: str = "td") -> str:
    """One escaped cell: numbers right-aligned with thousands separators, text left."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<{tag} {_CELL.format(align='left')}>{escape(str(value))}</{tag}>"
    shown = f"{value:,}" if isinstance(value, int) else f"{value:.4g}"
    return f"<{tag} {_CELL.format(align='right')}>{escape(shown)}</{tag}>"


def _table(caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(_cell(name, "th") for name in header)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    return (
        f'<table {_TABLE}><caption style="text-align:left;font-weight:bold">'
        f"{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


def _transition_rows(result: RunResult) -> list[list[Any]]:
    fed = result.fed or tuple(bool(t.event_sinks) for t in result.transitions)
    moves = result.events_per_transition
    return [
        [
            t.trigger,
            t.from_state,
            t.to_state,
            int(moves[i]),
            int(result.attempts[i]),
            int(result.vetoes[i]),
            "yes" if fed[i] else "no",
        ]
        for i, t in enumerate(result.transitions)
    ]


def _state_rows(result: RunResult) -> list[list[Any]]:
    if len(result.occupancy) == 0:
        return []
    final = result.occupancy[-1]
    total = float(final.sum()) or 1.0
    return [
        [state, int(final[k]), f"{100 * float(final[k]) / total:.2f}%"]
        for k, state in enumerate(result.states)
    ]


def _ledger_rows(result: RunResult) -> list[list[Any]]:
    return [
        [
            book.sink,
            book.collected,
            book.acknowledged,
            book.failed,
            book.pending,
            "ok" if book.ok else f"LOST {book.lost:,}",
        ]
        for book in result.ledgers
    ]


def run_result_html(result: RunResult) -> str:
    """`result` as an HTML fragment: headline, transitions, final states and ledgers."""
    rate = result.events / result.wall_time if result.wall_time > 0 else None
    speed = f" ({rate:,.0f} events/s)" if rate is not None else ""
    stopped = ", stopped before its end" if result.stopped else ""
    headline = (
        f"RunResult: seed {result.seed}, {result.subjects:,} subjects x {result.ticks:,} ticks "
        f"of {result.tick_ms:,} ms: {result.events:,} events, {result.moves:,} moves in "
        f"{result.wall_time:.3f} s{speed}{stopped}"
    )
    parts = [
        f"<div><p><strong>{escape(headline)}</strong></p>",
        _table(
            "transitions",
            ["trigger", "from", "to", "moves", "attempts", "vetoes", "feeds a sink"],
            _transition_rows(result),
        ),
        _table("states at the end", ["state", "subjects", "share"], _state_rows(result)),
    ]
    if result.ledgers:
        parts.append(
            _table(
                "delivery ledgers",
                ["sink", "collected", "acknowledged", "failed", "pending", "status"],
                _ledger_rows(result),
            )
        )
    else:
        parts.append("<p>no sink keeps a ledger</p>")
    parts.append("</div>")
    return "".join(parts)
