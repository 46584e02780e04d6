"""JSON lines encoded fast, with the bytes of the standard library's encoder.

- `json_line_encoder`: a function ``record -> bytes`` giving one JSON line (with its newline).
- `json_lines_encoder`: a function ``(records, out)`` appending the JSON line of each record
  to the bytearray `out`, one record after the other (the batch path of the file sinks).
- `Unwritable`: what that function raises for a record JSON cannot hold.
- `json_block_encoder`: a function ``records -> bytes | None`` giving the JSON lines of a
  list of dicts from one orjson call, or None where it cannot prove them the reference bytes
  (the tick path of the file sinks; `json_lines_encoder` is then used instead).
- `exact_encoder`: the same through the standard library alone (the reference bytes).
- `FAST`: True when orjson (the ``fast`` extra) is installed and used.

The bytes are defined by the standard library: ``json.dumps(record, ensure_ascii=False,
separators=(",", ":"), allow_nan=False, default=...)`` encoded as UTF-8, plus ``"\\n"``. With
orjson installed a line is encoded by orjson first, and the standard library encodes it again
only where the two may differ, so the output is the same byte for byte with or without orjson,
and whatever their versions (a test compares them on generated records):

- orjson refuses the record (integers beyond 64 bits, non-string keys, subclasses of the
  builtin types, lone surrogates, very deep nesting, ...): the standard library decides;
- the line holds ``null`` (orjson writes NaN and infinities as null, which the standard
  library refuses with ``allow_nan=False``), ``0.0000`` or an exponent ``e-5`` to ``e-9``
  (orjson writes floats between 1e-9 and 1e-4 as ``0.00001`` / ``2.5e-7`` where Python
  writes ``1e-05`` / ``2.5e-07``).

A false alarm (a string holding ``null``, say) costs only the slower encoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "FAST",
    "Unwritable",
    "exact_encoder",
    "json_block_encoder",
    "json_line_encoder",
    "json_lines_encoder",
]

try:
    import orjson
except ImportError:  # pragma: no cover - the `fast` extra is not installed
    orjson = None  # type: ignore[assignment]

FAST = orjson is not None

#: A float orjson writes differently from Python: an exponent -5 .. -9 after a digit.
_SMALL_EXPONENT = re.compile(rb"[0-9]e-[5-9](?![0-9])")

Encoder = Callable[[Any], bytes]
LinesEncoder = Callable[[Iterable[Any], bytearray], None]
BlockEncoder = Callable[[list[Any]], "bytes | None"]


class Unwritable(Exception):
    """A record JSON cannot hold, met by a `json_lines_encoder`.

    Attributes:
        record: the record.
        cause: the standard library's error: `TypeError` or `ValueError` for a value JSON
            cannot hold, `UnicodeEncodeError` for text UTF-8 cannot encode.
    """

    def __init__(self, record: Any, cause: Exception) -> None:
        super().__init__(str(cause))
        self.record = record
        self.cause = cause


def exact_encoder(default: Callable[[Any], Any]) -> Encoder:
    """``record -> bytes`` through the standard library: the reference bytes.

    Raises (from the returned function): `TypeError` / `ValueError` for a record JSON cannot
    hold, `UnicodeEncodeError` (a `ValueError`) for text UTF-8 cannot encode.
    """
    encode = json.JSONEncoder(
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=False,
        allow_nan=False,
        default=default,
    ).encode

    def exact(record: Any) -> bytes:
        return (encode(record) + "\n").encode("utf-8")

    return exact


def _options() -> int:
    """orjson's options for a JSON line: datetimes, dataclasses and subclasses of
    str/int/dict/list go to `default` (or, when it refuses them, to the standard library), as
    they do in the standard library."""
    return int(
        orjson.OPT_APPEND_NEWLINE
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )


def _may_differ(data: bytes, search: Callable[[bytes], object]) -> bool:
    """True when orjson's `data` may not be the standard library's bytes (see the module)."""
    # A one-byte search (memchr) first: "." and "-" are rare in event lines, and searching
    # for several bytes costs ~30x more per byte.
    return (
        b"null" in data
        or (b"." in data and b"0.0000" in data)
        or (b"-" in data and b"e-" in data and search(data) is not None)
    )


def json_line_encoder(default: Callable[[Any], Any]) -> Encoder:
    """``record -> bytes``: one JSON line, orjson where it gives the reference bytes.

    Args:
        default: converts a value JSON cannot hold by itself (datetimes, dataclasses, ...)
            or raises `TypeError`; used by both encoders.
    """
    exact = exact_encoder(default)
    if orjson is None:  # pragma: no cover - the `fast` extra is not installed
        return exact
    dumps = orjson.dumps
    options = _options()
    search = _SMALL_EXPONENT.search

    def fast(record: Any) -> bytes:
        try:
            line: bytes = dumps(record, default, options)
        except Exception:
            return exact(record)
        if _may_differ(line, search):
            return exact(record)
        return line

    return fast


def json_lines_encoder(default: Callable[[Any], Any]) -> LinesEncoder:
    """``(records, out)``: append each record's line (`json_line_encoder`'s bytes) to `out`.

    The records are taken from the iterable one at a time and each is encoded before the next
    is taken, so a mapper behind it (``map(mapper, ...)``) that reuses its dict is read in
    time. Each line goes straight into the bytearray `out` (orjson's output is freed at once:
    holding thousands of them costs more than encoding them). It stops at the first failure,
    with the lines before it in `out`: a record JSON cannot hold raises `Unwritable`; an
    exception of the iterable (a mapper's) propagates as it is.
    """
    exact = exact_encoder(default)

    def checked(record: Any) -> bytes:
        try:
            return exact(record)
        except (TypeError, ValueError) as exc:
            raise Unwritable(record, exc) from exc

    if orjson is None:  # pragma: no cover - the `fast` extra is not installed

        def plain(records: Iterable[Any], out: bytearray) -> None:
            for record in records:
                out += checked(record)

        return plain
    dumps = orjson.dumps
    options = _options()
    search = _SMALL_EXPONENT.search

    # The loop of `json_line_encoder`'s function, inlined: no Python call per record.
    def fast(records: Iterable[Any], out: bytearray) -> None:
        for record in records:
            try:
                line: bytes = dumps(record, default, options)
            except Exception:
                line = checked(record)
            else:
                if _may_differ(line, search):
                    line = checked(record)
            out += line

    return fast


def json_block_encoder(default: Callable[[Any], Any]) -> BlockEncoder:
    """``records -> bytes | None``: the JSON lines of a list of dicts, from one orjson call.

    orjson encodes a list of records several times faster than each record alone. The list
    ``[{...},{...}]`` is cut into lines at its ``},{``: when every record is exactly a
    `dict` (so each is written ``{...}``), the list holds exactly ``len(records) - 1`` of
    them only if no record holds one (in a string, or a nested list of dicts), and then each
    is a boundary. The bytes are `json_lines_encoder`'s; where that cannot be proven (orjson
    refuses a record, a ``},{`` inside a record, a value orjson may write differently:
    the module's checks, applied to the whole block) the result is None and the caller
    encodes record by record. None as well for no records or without orjson.

    The records are read after one another's mapper ran: the caller makes sure that no two
    are the same object (a mapper reusing its dict must be read record by record).
    """
    if orjson is None:  # pragma: no cover - the `fast` extra is not installed

        def none(records: list[Any]) -> bytes | None:
            return None

        return none
    dumps = orjson.dumps
    # No newline: the block's last line gets it with the replacement below.
    options = _options() & ~orjson.OPT_APPEND_NEWLINE
    search = _SMALL_EXPONENT.search
    exact_dict = {dict}

    def block(records: list[Any]) -> bytes | None:
        if not records or set(map(type, records)) != exact_dict:
            return None
        try:
            data: bytes = dumps(records, default, options)
        except Exception:
            return None
        if not data.startswith(b"[{") or _may_differ(data, search):
            return None
        # data is b"[{...},{...}]", without a raw newline (JSON escapes them in strings):
        # after the replacement each b"\n" is one b"},{", and there must be a boundary's worth.
        lines = data.replace(b"},{", b"}\n{")
        if lines.count(b"\n") != len(records) - 1:
            return None
        return lines[1:-1] + b"\n"

    return block
