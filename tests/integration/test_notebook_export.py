"""The export notebook runs against the real Kafka broker and PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.integration.services import require_db, require_kafka

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_export.ipynb"


@pytest.mark.kafka
@pytest.mark.db
def test_export_notebook_delivers_every_event(tmp_path: Path) -> None:
    """03_export.ipynb produces the banking run into Kafka and PostgreSQL and reads back as
    many records and rows as events were generated (the notebook asserts it)."""
    require_kafka()
    require_db()
    book = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        book, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(
        output.get("text", "")
        for cell in book.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "in Kafka" in printed and "in PostgreSQL" in printed
