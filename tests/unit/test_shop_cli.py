"""``dogesim run shop`` / ``dogesim validate``: a file with several entity types on the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from dogesim.cli import main

pytest.importorskip("faker")


def test_run_shop_writes_each_stream_and_summarises_each_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dogesim run shop --ticks 60` runs the shipped shop: four files, one summary per type."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "shop", "--ticks", "60"]) == 0
    out = capsys.readouterr().out
    for name in ("customers:", "products:", "orders:"):
        assert name in out.splitlines()
    assert "injected: duplicates" in out
    folder = tmp_path / "out" / "shop"
    assert sorted(p.name for p in folder.iterdir()) == [
        "customers.jsonl",
        "orders.jsonl",
        "payments.jsonl",
        "products.jsonl",
    ]


def test_validate_summarises_the_entity_types(capsys: pytest.CaptureFixture[str]) -> None:
    """`dogesim validate shop` names each entity type with its subjects and sinks."""
    from dogesim.modelfile.shipped import resolve_model

    assert main(["validate", resolve_model("shop")]) == 0
    out = capsys.readouterr().out
    assert "3 entity types" in out and "orders (" in out and "sinks: orders, payments" in out


def test_flags_of_one_run_are_refused_with_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out (one sink for one run) means nothing for several entity types: exit 2, named."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "shop", "--ticks", "5", "--out", "x.jsonl"]) == 2
    assert "--out cannot be used with a file of several entity types" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
