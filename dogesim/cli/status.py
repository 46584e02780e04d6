"""Exit statuses of the ``dogesim`` command, and the error that means "bad arguments".

- `EXIT_OK`, `EXIT_SINK`, `EXIT_USAGE`, `EXIT_INTERRUPTED`: the exit statuses.
- `_UsageError`: raised anywhere in the command for bad arguments; `main` prints it in one
  line and exits with `EXIT_USAGE`.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SINK = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _UsageError(Exception):
    """Bad command-line arguments (reported in one line, exit status 2)."""
