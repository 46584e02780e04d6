"""Reading a Parquet event log (the ``parquet`` sink's file) for `dogesim report` and `fit`.

- `is_parquet(path)`: whether `path` names a Parquet file (by its ``.parquet`` suffix).
- `read_parquet_log(path)`: the file as a DataFrame whose struct columns are flattened with
  dots (``subject.id``), the same columns `pandas.json_normalize` gives the JSON Lines log of
  the same events, so every report reads both alike.

pyarrow (the ``parquet`` extra) is imported only when a Parquet file is read.
"""

from __future__ import annotations

import os
from typing import Any

from dogesim.errors import DogesimError

__all__ = ["is_parquet", "read_parquet_log"]


def is_parquet(path: str | os.PathLike[str]) -> bool:
    """True for a path ending in ``.parquet`` (any case)."""
    return os.fspath(path).lower().endswith(".parquet")


def read_parquet_log(path: str | os.PathLike[str]) -> Any:
    """The Parquet file at `path` as a pandas DataFrame, struct columns flattened with dots.

    Raises:
        DogesimError: pyarrow is missing (naming the extra), or the file is not Parquet (a
            run still writing it, or killed, leaves only ``<path>.partial``).
    """
    where = os.fspath(path)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DogesimError(
            f"{where}: reading Parquet needs pyarrow: pip install 'dogesim[parquet]'"
        ) from None
    try:
        table = pq.read_table(where)
    except (OSError, pa.ArrowException) as exc:
        raise DogesimError(f"{where}: cannot read as Parquet: {exc}") from None
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    return table.to_pandas()
