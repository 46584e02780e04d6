"""Compressed event files (gzip, zstd), chosen by the file's suffix.

- `compression_of`: ``"gzip"`` for ``.gz``, ``"zstd"`` for ``.zst``/``.zstd``, else None.
- `member_compressor`: a function turning a block of complete lines into one complete gzip
  member or zstd frame. A file of such blocks is one valid stream (both formats read
  concatenated members/frames as one), and a block cut short by a full disk can be cut off
  whole, so a compressed file never holds a torn line either.
- `open_text`: a UTF-8 text stream of a plain, ``.gz`` or ``.zst`` file, read as it streams
  (``newline=""`` for the csv module). Corrupt data raise `CompressedFileError` naming the
  file; so does a compressed file cut short (its writer killed mid-write, a copy not
  finished), or with ``cut_short="complete"`` it reads as its complete lines.
- `log_format`: ``"csv"`` or ``"jsonl"`` for an event log path, looking past the
  compression suffix (``events.csv.gz`` is CSV).
- `GZIP_LEVEL`, `ZSTD_LEVEL`: the compression levels the file sinks use.

gzip comes with Python; zstd needs the ``zstandard`` package (the ``zstd`` extra), imported
only when a ``.zst`` file is written or read. Compressed bytes are deterministic for one
version of zlib / libzstd (gzip members carry no time or file name); what they decompress to
is the sink's exact output on every version.
"""

from __future__ import annotations

import gzip
import io
import os
import shlex
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dogesim.errors import DogesimError, SinkConfigError

__all__ = [
    "CUT_SHORT",
    "GZIP_LEVEL",
    "SUFFIXES",
    "ZSTD_LEVEL",
    "CompressedFileError",
    "compression_of",
    "log_format",
    "member_compressor",
    "open_text",
]

#: gzip level of the file sinks: level 1 compresses ~6x faster than zlib's default 6 and
#: keeps most of its ratio on event lines (11x vs 15x on the banking records).
GZIP_LEVEL = 1
#: zstd level of the file sinks (zstd's own default: fast and ~15x on event lines).
ZSTD_LEVEL = 3

#: File suffixes and the compression they name.
SUFFIXES: dict[str, str] = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def compression_of(path: str | os.PathLike[str]) -> str | None:
    """``"gzip"``, ``"zstd"`` or None, from the suffix of `path` (case-insensitive)."""
    if path == "-":
        return None
    return SUFFIXES.get(Path(path).suffix.lower())


def log_format(path: str | os.PathLike[str]) -> str:
    """``"csv"`` for ``.csv`` (also ``.csv.gz``, ``.csv.zst``), else ``"jsonl"``."""
    name = Path(path)
    if compression_of(name) is not None:
        name = name.with_suffix("")
    return "csv" if name.suffix.lower() == ".csv" else "jsonl"


def _zstandard(where: str) -> Any:
    try:
        import zstandard
    except ImportError:
        raise SinkConfigError(
            f"{where}: zstd needs the Python package zstandard, which is not installed: "
            "pip install 'dogesim[zstd]' (or use a .gz file)"
        ) from None
    return zstandard


def member_compressor(kind: str, where: str = "file sink") -> Callable[[bytes], bytes]:
    """``block -> bytes``: one complete gzip member or zstd frame holding `block`.

    Raises:
        SinkConfigError: `kind` is unknown, or zstd is asked for without ``zstandard``.
    """
    if kind == "gzip":

        def gzip_member(block: bytes) -> bytes:
            return gzip.compress(block, GZIP_LEVEL, mtime=0)

        return gzip_member
    if kind == "zstd":
        compressor = _zstandard(where).ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
        frame: Callable[[bytes], bytes] = compressor.compress
        return frame
    raise SinkConfigError(f"{where}: unknown compression {kind!r}; known: gzip, zstd")


class CompressedFileError(DogesimError):
    """A ``.gz``/``.zst`` file that cannot be read whole: corrupt (not data of its format, or
    damaged), or cut short (it ends inside a gzip member or zstd frame). The message names
    the file, what is wrong and the complete lines read before it.

    Attributes:
        path: the file.
        lines: the complete lines before the fault.
        cut_short: the file ends inside a member (else its data are corrupt).
    """

    def __init__(self, message: str, path: str, lines: int, *, cut_short: bool) -> None:
        super().__init__(message)
        self.path = path
        self.lines = lines
        self.cut_short = cut_short


class _Corrupt(Exception):
    """Raised by `_members` for data its decoder refuses (`at`: where their member begins)."""

    def __init__(self, why: str, at: int) -> None:
        super().__init__(why)
        self.at = at


def _members(
    raw: IO[bytes], new_decoder: Callable[[], Any], refused: type[Exception]
) -> Iterator[tuple[bytes, bool]]:
    """The decompressed bytes of a stream of members/frames, and whether the stream ended
    cut short (a member begun and not finished: the writer was killed mid-write).

    Raises:
        _Corrupt: the decoder refuses the data (`refused`, its error type).
    """
    decoder = new_decoder()
    started = False
    read = begun = 0  # bytes read so far; where the current member begins
    while chunk := raw.read(1 << 16):
        read += len(chunk)
        while chunk:
            started = True
            try:
                out = decoder.decompress(chunk)
            except refused as exc:
                raise _Corrupt(str(exc), begun) from None
            if out:
                yield out, False
            if not decoder.eof:
                break
            chunk = decoder.unused_data
            decoder, started, begun = new_decoder(), False, read - len(chunk)
    if started:
        yield b"", True


class _Decompressed(io.RawIOBase):
    """A readable raw stream of the decompressed bytes of a gzip or zstd file.

    Corrupt data raise `CompressedFileError`. A file cut short in its last member (a writer
    killed with ``kill -9``, a copy not finished) raises it too, unless `cut_short` is
    ``"complete"``: it then reads as the complete lines before the cut (the torn last line
    is left out, as a sink never counts one).
    """

    def __init__(self, raw: IO[bytes], codec: _Codec, where: str, cut_short: str) -> None:
        super().__init__()
        self._raw = raw
        self._chunks = _members(raw, codec.new_decoder, codec.refused)
        self._codec = codec.name
        self._unit = "member" if codec.name == "gzip" else "frame"
        self._where = where
        self._complete = cut_short == "complete"
        self._lines = 0  # complete lines made ready so far
        self._pending = b""  # bytes ready to read: complete lines
        self._held = b""  # bytes after the last newline so far
        self._done = False

    def readable(self) -> bool:
        return True

    def _next(self) -> tuple[bytes | None, bool]:
        try:
            return next(self._chunks, (None, False))
        except _Corrupt as exc:
            self._done = True
            raise CompressedFileError(
                f"{self._where}: corrupt {self._codec} data in the {self._unit} at byte "
                f"{exc.at} ({exc}), after {self._lines} complete lines: the file is damaged, "
                f"or not {self._codec}-compressed despite its name",
                self._where,
                self._lines,
                cut_short=False,
            ) from None

    def _cut(self) -> None:
        self._held, self._done = b"", True
        if self._complete:
            return
        raise CompressedFileError(
            f"{self._where}: cut short: it ends inside a {self._codec} {self._unit}, after "
            f"{self._lines} complete lines (its writer was killed mid-write, or the copy is "
            "incomplete); refused rather than read as the whole log. To use the complete "
            f"lines: {self._codec} -dc {shlex.quote(self._where)} | head -n {self._lines} > "
            "a plain file",
            self._where,
            self._lines,
            cut_short=True,
        )

    def readinto(self, target: Any) -> int:
        while not self._pending:
            if self._done:
                return 0
            data, cut = self._next()
            if data is None:  # the stream ended whole: what is held is data too
                self._pending, self._held, self._done = self._held, b"", True
            elif cut:  # cut short: the torn tail is not a line
                self._cut()
            else:
                data = self._held + data
                end = data.rfind(b"\n") + 1
                self._pending, self._held = data[:end], data[end:]
                self._lines += self._pending.count(b"\n")
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._raw.close()
        super().close()


@dataclass(frozen=True)
class _Codec:
    """How to decompress one format: its name, a new decoder, the error its decoder raises."""

    name: str
    new_decoder: Callable[[], Any]
    refused: type[Exception]


def _codec(kind: str, where: str) -> _Codec:
    """The `_Codec` of ``"gzip"`` or ``"zstd"`` (zstd needs ``zstandard``)."""
    if kind == "gzip":
        return _Codec("gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), zlib.error)
    zstandard = _zstandard(f"reading {where!r}")
    return _Codec("zstd", zstandard.ZstdDecompressor().decompressobj, zstandard.ZstdError)


def _empty_file(raw: IO[bytes]) -> bool:
    """A regular file of 0 bytes (a pipe or device is read as it comes)."""
    info = os.fstat(raw.fileno())
    return stat.S_ISREG(info.st_mode) and info.st_size == 0


def _no_data(where: str, codec: str) -> CompressedFileError:
    """The error for a 0-byte compressed file: no member, so no events (``gzip -t``:
    unexpected end of file)."""
    return CompressedFileError(
        f"{where}: cut short: 0 bytes, not even a {codec} header ({codec} -t: unexpected "
        "end of file), so no events: a copy or download that wrote nothing, or "
        "a sink that delivered no event",
        where,
        0,
        cut_short=True,
    )


#: What `open_text` does with a compressed file cut short.
CUT_SHORT = ("error", "complete")


def open_text(
    path: str | os.PathLike[str], *, newline: str | None = None, cut_short: str = "error"
) -> IO[str]:
    """`path` opened for reading as UTF-8 text, decompressed as it is read when its suffix
    names a compression.

    Args:
        path: the file.
        newline: as for `open`: None (universal newlines: ``\r\n`` and ``\r`` read as
            ``\n``, what line readers want), or ``""`` to read line ends untranslated, as the
            csv module needs (a quoted cell may hold ``\r\n`` or ``\r``).
        cut_short: a compressed file that ends inside a member or frame: ``"error"`` raises
            `CompressedFileError` when the read reaches the cut, ``"complete"`` reads the
            complete lines before it (what a writer killed mid-write had finished).

    Raises:
        OSError: the file cannot be opened.
        ValueError: `cut_short` is neither ``"error"`` nor ``"complete"``.
        SinkConfigError: a ``.zst`` file without ``zstandard`` installed.
        CompressedFileError: while reading: corrupt data, or a cut (``cut_short="error"``);
            at once for a 0-byte file (``cut_short="error"``: no data of the format at all).
    """
    if cut_short not in CUT_SHORT:
        raise ValueError(f"cut_short must be 'error' or 'complete', not {cut_short!r}")
    kind = compression_of(path)
    if kind is None:
        return open(path, encoding="utf-8", newline=newline)
    where = os.fspath(path)
    codec = _codec(kind, where)
    raw = open(path, "rb")  # noqa: SIM115 - closed with the returned stream
    if cut_short == "error" and _empty_file(raw):
        raw.close()
        raise _no_data(where, codec.name)
    buffered = io.BufferedReader(_Decompressed(raw, codec, where, cut_short))
    return io.TextIOWrapper(buffered, encoding="utf-8", newline=newline)
