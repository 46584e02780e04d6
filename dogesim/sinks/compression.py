"""Compressed event files (gzip, zstd), chosen by the file's suffix.

- `compression_of`: ``"gzip"`` for ``.gz``, ``"zstd"`` for ``.zst``/``.zstd``, else None.
- `member_compressor`: a function turning a block of complete lines into one complete gzip
  member or zstd frame. A file of such blocks is one valid stream (both formats read
  concatenated members/frames as one), and a block cut short by a full disk can be cut off
  whole, so a compressed file never holds a torn line either.
- `open_text`: a UTF-8 text stream of a plain, ``.gz`` or ``.zst`` file, read as it streams
  (``newline=""`` for the csv module); a compressed file cut short (its writer killed
  mid-write) reads as its complete lines.
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
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from dogesim.errors import SinkConfigError

__all__ = [
    "GZIP_LEVEL",
    "SUFFIXES",
    "ZSTD_LEVEL",
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


def _members(raw: IO[bytes], new_decoder: Callable[[], Any]) -> Iterator[tuple[bytes, bool]]:
    """The decompressed bytes of a stream of members/frames, and whether the stream ended
    cut short (a member begun and not finished: the writer was killed mid-write)."""
    decoder = new_decoder()
    started = False
    while chunk := raw.read(1 << 16):
        while chunk:
            started = True
            out = decoder.decompress(chunk)
            if out:
                yield out, False
            if not decoder.eof:
                break
            chunk = decoder.unused_data
            decoder, started = new_decoder(), False
    if started:
        yield b"", True


class _Decompressed(io.RawIOBase):
    """A readable raw stream of the decompressed bytes of a gzip or zstd file.

    A file cut short in its last member (a writer killed with ``kill -9``) reads as the
    complete lines before the cut: the torn last line is left out, as a sink never counts one.
    """

    def __init__(self, raw: IO[bytes], new_decoder: Callable[[], Any]) -> None:
        super().__init__()
        self._raw = raw
        self._chunks = _members(raw, new_decoder)
        self._pending = b""  # bytes ready to read: complete lines
        self._held = b""  # bytes after the last newline so far
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._pending:
            if self._done:
                return 0
            data, cut = next(self._chunks, (None, False))
            if data is None:  # the stream ended whole: what is held is data too
                self._pending, self._held, self._done = self._held, b"", True
            elif cut:  # cut short: the torn tail is not a line
                self._held, self._done = b"", True
            else:
                data = self._held + data
                end = data.rfind(b"\n") + 1
                self._pending, self._held = data[:end], data[end:]
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_text(path: str | os.PathLike[str], *, newline: str | None = None) -> IO[str]:
    """`path` opened for reading as UTF-8 text, decompressed as it is read when its suffix
    names a compression (a compressed file cut short reads as its complete lines).

    Args:
        path: the file.
        newline: as for `open`: None (universal newlines: ``\r\n`` and ``\r`` read as
            ``\n``, what line readers want), or ``""`` to read line ends untranslated, as the
            csv module needs (a quoted cell may hold ``\r\n`` or ``\r``).

    Raises:
        OSError: the file cannot be opened.
        SinkConfigError: a ``.zst`` file without ``zstandard`` installed.
    """
    kind = compression_of(path)
    if kind is None:
        return open(path, encoding="utf-8", newline=newline)
    if kind == "gzip":
        new_decoder: Callable[[], Any] = lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)  # noqa: E731
    else:
        zstandard = _zstandard(f"reading {os.fspath(path)!r}")
        new_decoder = zstandard.ZstdDecompressor().decompressobj
    raw = open(path, "rb")  # noqa: SIM115 - closed with the returned stream
    buffered = io.BufferedReader(_Decompressed(raw, new_decoder))
    return io.TextIOWrapper(buffered, encoding="utf-8", newline=newline)
