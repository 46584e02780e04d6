"""CSV rows of a tick built column by column, with the bytes of the standard library's writer.

- `csv_lines`: the rows of a list of records as text lines (each ending in ``"\\n"``),
  built per column with C-level maps and joins, or None where the columns hold anything
  `csv` might write differently (the caller then uses its `csv.writer`).
- `exact_lines`: the same rows through ``csv.writer(..., lineterminator="\\n")`` one by one,
  as every Python version writes them: the reference the file sink's bytes are defined by.
- `cr_quoted`: one row so, a cell holding a lone ``"\\r"`` quoted (before Python 3.11.9 the
  writer left it bare, and no reader read the row back).

The default dialect (``excel``, ``QUOTE_MINIMAL``) writes a cell as it is unless it holds the
delimiter, the quote character, ``\\r`` or ``\\n``; ``None`` is an empty cell, integers and
booleans are their ``str()``, floats their ``repr()``. A column is built here only when each
of its cells is one of those exact types (no subclasses: an `enum.IntEnum` has its own
``str()``) and no string of it needs quoting (nor holds a NUL, which some versions refuse),
checked on the whole column at once. A row of a single empty cell is written ``""`` by the
writer, so records of fewer than two columns always go to the writer.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["cr_quoted", "csv_lines", "exact_lines"]

_NONE = type(None)
#: Cell types whose ``str()`` is the writer's text (a float's ``str()`` is its ``repr()``).
_PLAIN = frozenset({int, str, float, bool})
_EXACT_DICT = {dict}


def _cells(cells: list[Any]) -> list[Any] | None:
    """One column's cells ready for ``%s`` (None as ``""``), or None for another type."""
    kinds = set(map(type, cells))
    if kinds <= _PLAIN:
        return cells
    if _NONE in kinds and kinds - {_NONE} <= _PLAIN:
        return ["" if cell is None else cell for cell in cells]
    return None


def _full_rows(records: list[dict[Any, Any]], order: Sequence[str]) -> list[Any] | None:
    """Each record's cells as a tuple, when every record has exactly the columns (its size
    and a value for each) and every cell is of a plain type; else None."""
    if set(map(len, records)) != {len(order)}:
        return None
    try:
        rows = list(map(operator.itemgetter(*order), records))
    except KeyError:
        return None
    if not set(map(type, itertools.chain.from_iterable(rows))) <= _PLAIN:
        return None
    return rows


def _sparse_rows(
    records: list[dict[Any, Any]], order: Sequence[str], columns: frozenset[str]
) -> Iterable[Any] | None:
    """The rows' cells (None as ``""``, a missing key too), when every key is a column and
    every cell of a plain type or None, taken column by column; else None."""
    if not columns.issuperset(itertools.chain.from_iterable(records)):  # every key
        return None
    cells = []
    for name in order:
        column = _cells(list(map(dict.get, records, itertools.repeat(name))))
        if column is None:
            return None
        cells.append(column)
    return zip(*cells, strict=True)


def csv_lines(
    records: list[Any], order: Sequence[str], columns: frozenset[str]
) -> tuple[str, list[str]] | None:
    """The CSV line (ending ``"\n"``) of each record, cells in `order`, and their text, or
    None.

    Args:
        records: the rows, each exactly a `dict` whose keys are among `columns` (a missing
            key is an empty cell); anything else gives None.
        order: the columns in their order (``frozenset(order) == columns``).
        columns: the allowed keys.

    Returns:
        ``("".join(lines), lines)`` with `exact_lines`'s lines, or None where the writer
        must decide (a key outside the columns, a cell that needs quoting or is not of a
        plain type, fewer than two columns, no records).
    """
    if len(order) < 2 or not records or set(map(type, records)) != _EXACT_DICT:
        return None
    rows: Iterable[Any] | None = _full_rows(records, order)
    if rows is None:
        rows = _sparse_rows(records, order, columns)
        if rows is None:
            return None
    row = ",".join(["%s"] * len(order)) + "\n"
    try:
        lines = list(map(row.__mod__, rows))
    except ValueError:  # an int of more digits than its string conversion allows
        return None
    # A cell needing quotes holds a delimiter, a line end or a quote character beyond the
    # rows' own (a NUL too: some versions refuse it): one check over the whole text.
    text = "".join(lines)
    if (
        text.count(",") != len(lines) * (len(order) - 1)
        or text.count("\n") != len(lines)
        or any(char in text for char in _SPECIAL)
    ):
        return None
    return text, lines


#: Characters that make the writer quote a cell (or that some versions refuse), besides the
#: delimiter and the line end counted by `csv_lines`.
_SPECIAL = ('"', "\r", "\x00")


def exact_lines(records: list[Any], order: Sequence[str]) -> list[str]:
    """The reference: each record's row through ``csv.writer`` (missing keys empty), as
    every Python version writes it (`cr_quoted`)."""
    return [cr_quoted([record.get(name) for name in order]) for record in records]


def cr_quoted(cells: Sequence[Any]) -> str:
    """The row ``csv.writer(..., lineterminator="\n")`` writes for `cells`, as Python 3.11.9,
    3.12.3 and later write it: a cell holding a lone ``"\r"`` quoted.

    Earlier versions quote only the characters of the writer's line terminator, so they leave
    such a cell bare and no CSV reader reads the row back. A writer ending rows in
    ``"\r\n"`` quotes it on every version and otherwise quotes as the ``"\n"`` one does;
    its row with the line end swapped is the row wanted. The sink uses it for a row (or
    header) holding a ``"\r"``.
    """
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()[:-2] + "\n"
