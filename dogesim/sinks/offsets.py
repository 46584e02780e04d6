"""Sinks that can say where their output stands, so a resumed run continues it exactly.

- `PositionedSink`: the protocol — ``output_identity()`` names where the sink writes;
  ``position()`` makes everything collected so far durable
  and returns where the output ends (JSON data);
  ``restore_position(position)`` cuts the output back to that point before a resumed run
  writes; an optional ``defer_commits()`` asks a transactional sink to commit only at
  `position` and at ``close()``, so that a crash leaves nothing past the last checkpoint.
- `planned_positions`, `commit_positions`: the positions of a model's sinks for a checkpoint,
  as they will be once committed, and the commit (a checkpoint is written in two steps).
- `positions_hold`: whether the sinks are at saved positions (choosing a pending checkpoint).
- `restore_positions`: hand each sink of a resumed run its saved position.
- `reconcile`: hand the checkpoint's subjects to sinks that keep a row per subject
  (``reconcile(subjects)``: state tables), which bring their table back to the checkpoint.
- `defer_commits`: ask every sink that can to commit only at checkpoints.
- `abandon`: a run failed: sinks that defer commits roll back what the last checkpoint did
  not commit (the run is resumed from that checkpoint), through ``abandon_uncommitted()``.

Sinks are matched by their place in `Model.sinks()` and by identity: a resumed run whose sink
at a place writes somewhere else is refused, not truncated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from dogesim.errors import RunError
from dogesim.sinks.base import is_positioned, sink_method

__all__ = [
    "PositionedSink",
    "abandon",
    "commit_positions",
    "defer_commits",
    "planned_positions",
    "positions_hold",
    "reconcile",
    "restore_positions",
]


@runtime_checkable
class PositionedSink(Protocol):
    """A sink that records and restores its position (see the module docstring)."""

    def output_identity(self) -> str:
        """Where the sink writes (a file's absolute path, a database table)."""

    def position(self) -> dict[str, Any]:
        """Make the collected events durable; where the output ends (JSON data)."""

    def restore_position(self, position: Mapping[str, Any]) -> None:
        """Cut the output back to `position` (raise `RunError` when it cannot be)."""


def planned_positions(sinks: Sequence[Any]) -> list[dict[str, Any]]:
    """``{"index": i, "identity": ..., **position}`` for each sink at place ``i`` that has a
    position, as it will be once `commit_positions` has run; nothing is committed yet.

    A checkpoint is written in two steps so that a crash between them is recoverable: the
    file with these positions is made durable as a pending checkpoint, then the sinks commit,
    then the pending file replaces the checkpoint. A sink without ``planned_position`` makes
    its events durable at once (files: flushed and fsynced)."""
    out = []
    for i, sink in enumerate(sinks):
        if is_positioned(sink):
            plan = sink_method(sink, "planned_position")
            where = plan() if plan is not None else sink.position()
            out.append({"index": i, "identity": sink.output_identity(), **where})
    return out


def commit_positions(sinks: Sequence[Any]) -> None:
    """Call ``commit_position()`` on every sink that has one (after `planned_positions`)."""
    for sink in sinks:
        commit = sink_method(sink, "commit_position")
        if commit is not None:
            commit()


def positions_hold(sinks: Sequence[Any], saved: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every sink that can tell (``holds_position``) is at its saved position."""
    for position in saved:
        index = int(position["index"])
        sink = sinks[index] if index < len(sinks) else None
        holds = sink_method(sink, "holds_position")
        if holds is not None and not holds(position):
            return False
    return True


def restore_positions(sinks: Sequence[Any], saved: Sequence[Mapping[str, Any]], where: str) -> None:
    """Give each sink its saved position (matched by place and identity).

    Raises:
        RunError: a saved position's place holds no sink, or a sink that cannot take it, or
            one that writes elsewhere (a different identity).
    """
    for position in saved:
        index = int(position["index"])
        sink = sinks[index] if index < len(sinks) else None
        if sink is None or not is_positioned(sink):
            raise RunError(
                f"{where}: sink {index} ({position.get('identity')}) had a position at the "
                f"checkpoint, but the resumed run's sink there is {sink!r}; resume with the "
                "same sinks"
            )
        identity = sink.output_identity()
        if identity != position.get("identity"):
            raise RunError(
                f"{where}: sink {index} wrote to {position.get('identity')} at the checkpoint, "
                f"the resumed run's writes to {identity}; resume with the same "
                "sinks"
            )
        sink.restore_position(position)


def reconcile(sinks: Sequence[Any], subjects: Sequence[Any]) -> None:
    """Call ``reconcile(subjects)`` on every sink that has one, after `restore_positions`:
    `subjects` are all those the checkpoint's run had made, in order."""
    for sink in sinks:
        bring_back = sink_method(sink, "reconcile")
        if bring_back is not None:
            bring_back(subjects)


def defer_commits(sinks: Sequence[Any]) -> None:
    """Call ``defer_commits()`` on every sink that has one."""
    for sink in sinks:
        defer = sink_method(sink, "defer_commits")
        if defer is not None:
            defer()


def abandon(sinks: Sequence[Any]) -> None:
    """Call ``abandon_uncommitted()`` on every sink that has one (a failed run)."""
    for sink in sinks:
        abandon_uncommitted = sink_method(sink, "abandon_uncommitted")
        if abandon_uncommitted is not None:
            abandon_uncommitted()
