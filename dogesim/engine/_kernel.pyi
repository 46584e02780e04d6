"""Types of the compiled kernel `dogesim.engine._kernel` (source: ``_kernel.c``)."""

from __future__ import annotations

from array import array
from typing import Any

def tick(
    due: list[int],
    draws: list[float],
    waits: list[float],
    rows: list[tuple[list[float], int, int, Any]],
    plan: list[tuple[Any, Any, Any, int, Any]],
    collectors: list[tuple[Any, ...]],
    batches: list[tuple[Any, ...]],
    events: list[int],
    vetoes: list[int],
    state: array[int],
    subjects: list[Any],
    ts: int,
    after: int,
    horizon: int,
    beyond: int,
    bits: int,
    tick_map: dict[int, list[Any]],
    pending_map: dict[int, tuple[list[int], list[int]]],
    heap: list[int],
    draw_choice: bool,
    /,
) -> None: ...
def run_plain(
    due: list[int],
    chosen: list[int],
    subjects: list[Any],
    plan: list[tuple[Any, Any, Any, int]],
    routes: Any,
    ts: int,
    /,
) -> list[int]: ...
def gather(
    subjects: list[Any],
    order: list[Any],
    due: Any,
    chosen: Any,
    moved: Any,
    mask: Any,
    /,
) -> tuple[list[Any], list[Any]]: ...
def json_lines(
    heads: dict[Any, bytes],
    transitions: list[Any],
    subjects: list[Any],
    kind: type,
    names: tuple[str, ...],
    keys: tuple[bytes, ...],
    /,
) -> bytes | None: ...
