"""Argument values of the ``dogesim`` command: argparse types and output-path checks.

- `_whole(minimum, maximum)` and its instances `_positive`, `_non_negative`, `_tick_count`,
  `_subject_count`: whole numbers within bounds.
- `_path`, `_duration`, `_record_every`, `_speed`, `_timestamp`: the other value types.
- `_writable(flag, path, plot=...)`: refuse an output path that cannot be written, before
  any work (`_PLOT_EXTENSIONS` are the plot files matplotlib writes).
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections.abc import Callable
from pathlib import Path

from dogesim import redact
from dogesim.cli.status import _UsageError
from dogesim.modelfile.source import MAX_SUBJECTS, MAX_TICKS

#: Plot file extensions matplotlib writes without extra packages.
_PLOT_EXTENSIONS = (".png", ".svg", ".pdf", ".jpg", ".jpeg", ".eps", ".ps", ".tif", ".tiff")


def _whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum` (and at most `maximum`)."""

    def parse(text: str) -> int:
        if len(text) > 40:  # int() of thousands of digits is refused (and slow)
            raise argparse.ArgumentTypeError(f"{text[:20]!r}... is not a whole number")
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} must be at most {maximum:,}")
        return value

    return parse


_positive = _whole(1)
_non_negative = _whole(0)
_tick_count = _whole(1, MAX_TICKS)
_subject_count = _whole(1, MAX_SUBJECTS)


def _path(text: str) -> str:
    """An argparse type: a non-empty path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name")
    return text


def _converted(parse: Callable[[str], int], text: str) -> int:
    """`parse(text)`, its `ValueError` turned into argparse's one-line error."""
    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> int:
    """An argparse type: a duration (``500ms``, ``2s``, ``1m``) in milliseconds."""
    from dogesim.modelfile import parse_duration

    return _converted(parse_duration, text)


def _tick(text: str) -> int | str:
    """An argparse type: a tick length in ms (``1m``), or calendar months (``1mo``, ``1y``)."""
    from dogesim.calendar_ticks import calendar_months

    try:
        months = calendar_months(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"{months}mo" if months else _duration(text)


def _age_bins(text: str) -> list[int]:
    """An argparse type: age bins' lower edges in ticks, ``0,12,24``."""
    try:
        edges = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give lower edges in ticks, e.g. 0,12,24"
        ) from None
    if not edges or edges[0] != 0 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise argparse.ArgumentTypeError(f"{text!r}: edges increase from 0, e.g. 0,12,24")
    return edges


def _record_every(text: str) -> int | str:
    """An argparse type: ticks per row of the result's tables (``60``) or a duration
    (``1h``); whether a duration is whole ticks is checked against the model's tick."""
    if text.isdigit():
        return _positive(text)
    _duration(text)
    return text


def _speed(text: str) -> float:
    """An argparse type: a positive, finite speed-up factor."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive speed-up factor")
    return value


def _timestamp(text: str) -> int:
    """An argparse type: an ISO-8601 time or epoch milliseconds."""
    from dogesim.modelfile import parse_timestamp

    return _converted(parse_timestamp, text)


#: A URL (``sqlite:///x.db``, ``kafka://host``, ``s3://bucket``): never a file name here.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _writable(flag: str, path: str, *, plot: bool = False) -> None:
    """Refuse, before any work, an output `path` that cannot be written.

    Makes the missing parent directories (the command would make them anyway) and creates
    and removes the file when it does not exist yet, so a read-only mount, a parent that is
    a file or a name too long is found now, not after the run.
    """
    if path == "-" and not plot:
        return
    if _URL.match(path):
        raise _UsageError(
            f"dogesim: {flag} {redact.mask_url(path)}: is a URL, not a file; {flag} writes a "
            "local file. To send events to a database or Kafka, declare the sink in the model "
            "file and choose it with --sink NAME"
        )
    target = Path(path)
    if plot and target.suffix.lower() not in _PLOT_EXTENSIONS:
        raise _UsageError(
            f"dogesim: {flag} {path}: a plot file ends in one of {', '.join(_PLOT_EXTENSIONS)}"
        )
    try:
        if target.is_dir():
            raise _UsageError(f"dogesim: {flag} {path}: is a directory; give a file name")
        for parent in target.parents:
            if parent.exists() and not parent.is_dir():
                raise _UsageError(
                    f"dogesim: {flag} {path}: cannot be written: {parent} is a file, not a "
                    "directory"
                )
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8"):
            pass
        if not existed:
            target.unlink()
    except OSError as exc:
        raise _UsageError(f"dogesim: {flag} {path}: cannot be written: {exc.strerror}") from None
