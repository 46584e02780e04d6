"""Jupyter: a RunResult shows as HTML tables of counts and ledgers; tqdm.auto progress."""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from dogesim import Model, Simulation
from dogesim.examples.banking import banking_simulation
from dogesim.progress import ProgressBar, ledger_status
from dogesim.sinks.base import DeliveryLedger
from dogesim.sinks.files import JsonLinesSink
from dogesim.sinks.memory import MemorySink

ROOT = Path(__file__).resolve().parents[2]


class Tables(HTMLParser):
    """The tables of an HTML fragment: caption -> rows of cell texts (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.headline = ""
        self._caption: str | None = None
        self._rows: list[list[str]] = []
        self._text: list[str] | None = None
        self._where = ""

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self._rows = []
        elif tag == "tr":
            self._rows.append([])
        elif tag in ("td", "th", "caption", "strong"):
            self._text, self._where = [], tag

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._text is not None:
            self._rows[-1].append("".join(self._text))
        elif tag == "caption" and self._text is not None:
            self._caption = "".join(self._text)
        elif tag == "strong" and self._text is not None:
            self.headline = "".join(self._text)
        elif tag == "table" and self._caption is not None:
            self.tables[self._caption] = self._rows
        if tag in ("td", "th", "caption", "strong"):
            self._text = None


def parse(html: str) -> Tables:
    """The parsed fragment."""
    parser = Tables()
    parser.feed(html)
    parser.close()
    return parser


def number(cell: str) -> int:
    """A cell's integer (thousands separators allowed)."""
    return int(cell.replace(",", ""))


def test_run_result_html_holds_the_runs_counts_and_ledgers(tmp_path: Path) -> None:
    """The HTML repr: one row per transition with its moves/attempts/vetoes, final states
    with their counts, the ledger as the sink left it."""
    sink = JsonLinesSink(tmp_path / "e.jsonl")
    result = banking_simulation([sink], subjects=800, ticks=300, seed=5).run()
    page = parse(result._repr_html_())
    assert "seed 5, 800 subjects x 300 ticks" in page.headline
    assert f"{result.events:,} events" in page.headline
    transitions = page.tables["transitions"]
    assert transitions[0] == [
        "trigger",
        "from",
        "to",
        "moves",
        "attempts",
        "vetoes",
        "feeds a sink",
    ]
    for row, t, moves, attempts, vetoes in zip(
        transitions[1:], result.transitions, result.events_per_transition, result.attempts,
        result.vetoes, strict=True,
    ):  # fmt: skip
        assert row[:3] == [t.trigger, t.from_state, t.to_state]
        assert [number(c) for c in row[3:6]] == [int(moves), int(attempts), int(vetoes)]
    spending = next(row for row in transitions if row[0] == "spending")
    assert number(spending[5]) > 0  # the banking callbacks veto some payments
    states = page.tables["states at the end"][1:]
    assert [row[0] for row in states] == list(result.states)
    assert [number(row[1]) for row in states] == [int(n) for n in result.occupancy[-1]]
    assert sum(number(row[1]) for row in states) == 800
    ledger = page.tables["delivery ledgers"][1]
    lines = len((tmp_path / "e.jsonl").read_bytes().splitlines())
    assert ledger[0] == sink.ledger.sink
    assert [number(c) for c in ledger[1:5]] == [lines, lines, 0, 0] and ledger[5] == "ok"


def test_run_result_html_escapes_names() -> None:
    """State and trigger names and sink names are escaped: no markup gets through."""
    model = Model(["<a>", "b&c"], "<a>")
    sink = MemorySink()
    model.add_transition("<script>x</script>", "<a>", "b&c", 50, event_sinks=[sink])
    result = Simulation(model, 20, ticks=5, tick_ms=1000, seed=1).run()
    html = result._repr_html_()
    assert "<script>" not in html and "<a>" not in html
    page = parse(html)
    assert page.tables["transitions"][1][:3] == ["<script>x</script>", "<a>", "b&c"]
    assert [row[0] for row in page.tables["states at the end"][1:]] == ["<a>", "b&c"]


def test_progress_bar_counts_every_tick_and_ends_with_the_closed_ledgers(tmp_path: Path) -> None:
    """ProgressBar(sim).run(): a tqdm.auto bar over all ticks whose last status shows the
    ledger after the sinks closed (a file sink acknowledges at close)."""
    from tqdm.auto import tqdm

    out = io.StringIO()
    sink = JsonLinesSink(tmp_path / "e.jsonl")
    sim = banking_simulation([sink], subjects=300, ticks=120, seed=2)
    bar = ProgressBar(sim, file=out)
    result = bar.run()
    assert isinstance(bar.bar, tqdm) and bar.closed and sim.progress is bar
    assert bar.bar.n == 120 and bar.done == 120
    text = out.getvalue()
    assert "120/120" in text
    final = f"{result.events:,} acknowledged of {result.events:,}"
    assert final in text.rsplit("120/120", 1)[-1]


def test_progress_bar_as_a_plain_hook_closes_at_the_last_tick() -> None:
    """Given as the progress hook, the bar closes itself when the last tick is done."""
    out = io.StringIO()
    sim = banking_simulation([MemorySink()], subjects=50, ticks=40, seed=2)
    sim.progress = ProgressBar(total=40, file=out)
    sim.run()
    assert sim.progress.closed and "40/40" in out.getvalue()


def test_ledger_status_names_each_sink() -> None:
    """One ledger: events and rate; several: deliveries summed, each sink's counts."""
    one = DeliveryLedger("jsonl:a", collected=1200, acknowledged=1000, failed=2)
    assert ledger_status([one], 0.5) == (
        "1,200 events (2,400/s); jsonl:a: 1,000 acknowledged of 1,200, 2 failed"
    )
    two = ledger_status([one, DeliveryLedger("kafka:t", collected=800)], 1.0)
    assert two.startswith("2,000 deliveries to 2 sinks (2,000/s); ")
    assert ledger_status([], 1.0) == "no sink keeps a ledger"


def test_in_a_jupyter_kernel_the_result_is_html_and_the_bar_a_widget(tmp_path: Path) -> None:
    """Executed in a real Jupyter kernel: the cell ending in `result` displays the HTML
    table, and ProgressBar draws tqdm's notebook widget."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    book = nbformat.v4.new_notebook()
    book.cells = [
        nbformat.v4.new_code_cell(
            f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
            "from dogesim.examples.banking import banking_simulation\n"
            "from dogesim.progress import ProgressBar\n"
            "from dogesim.sinks.memory import MemorySink\n"
            "result = ProgressBar(banking_simulation([MemorySink()], subjects=200, ticks=60,"
            " seed=4)).run()\n"
            "result"
        )
    ]
    env = {"metadata": {"path": str(tmp_path)}}
    nbclient.NotebookClient(book, kernel_name="python3", timeout=120, resources=env).execute()
    outputs = book.cells[0].outputs
    kinds = {key for output in outputs for key in output.get("data", {})}
    assert "application/vnd.jupyter.widget-view+json" in kinds  # tqdm.notebook's widget
    html = next(o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {}))
    page = parse(html)
    assert "200 subjects x 60 ticks" in page.headline
    assert sum(number(row[1]) for row in page.tables["states at the end"][1:]) == 200
