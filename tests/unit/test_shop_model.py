"""models/shop.yaml: four streams with no Python; references resolve, faults at their rates."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest

from dogesim.faults import FaultLedger
from dogesim.modelfile import load_model_file
from dogesim.modelfile.entities import EntitiesSpec
from dogesim.modelfile.shipped import MODELS_DIR

pytest.importorskip("faker")

SIGMAS = 5.0  # a false alarm has probability < 1e-6 per bound
SHOP = MODELS_DIR / "shop.yaml"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _epoch_ms(iso: str) -> int:
    return round(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _within(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Three hours of the shop into JSONL files in a temporary folder."""
    out = tmp_path_factory.mktemp("shop")
    spec = load_model_file(SHOP, ticks=180, environ={"DOGESIM_OUT_DIR": str(out)})
    assert isinstance(spec, EntitiesSpec)
    return out / "shop", spec.run()


def test_every_foreign_key_names_an_entity_of_the_streams(shop_run: tuple[Path, dict]) -> None:
    """Orders name customers and products that signed up / were listed no later than the
    order; payments name orders that were placed; payments happen only for paid orders."""
    folder, _ = shop_run
    customers = {
        r["customer_id"]: r["at"]
        for r in _lines(folder / "customers.jsonl")
        if r["event"] == "signup"
    }
    products = {r["product_id"] for r in _lines(folder / "products.jsonl") if r["event"] == "list"}
    orders = _lines(folder / "orders.jsonl")
    placed = {r["order_id"] for r in orders if r["event"] == "place"}
    assert len(placed) > 300 and len(customers) >= 300 and len(products) == 60
    for order in orders:
        assert order["product_id"] in products, order
        assert _epoch_ms(customers[order["customer_id"]]) <= order["at"], order
        assert order["total"] > 0 and 1 <= order["quantity"] <= 4
    payments = _lines(folder / "payments.jsonl")
    assert payments and {p["order_id"] for p in payments} <= placed
    assert [p["payment_id"] for p in payments] == list(range(1, len(payments) + 1))


def test_orders_faults_follow_their_rates_and_the_ledger_reconciles(
    shop_run: tuple[Path, dict],
) -> None:
    """1% duplicates and 2% late deliveries, counted; the file holds collected + duplicates."""
    folder, results = shop_run
    book = next(b for b in results["orders"].ledgers if isinstance(b, FaultLedger))
    n = book.collected
    assert _within(book.injected_duplicates, n, 0.01)
    assert _within(book.injected_late, n, 0.02)
    assert book.injected_drops == book.injected_malformed == 0
    assert len(_lines(folder / "orders.jsonl")) == n + book.injected_duplicates
    assert book.acknowledged == n == results["orders"].events and book.failed == 0


def test_faker_fields_look_real(shop_run: tuple[Path, dict]) -> None:
    """Customers have names, e-mails and addresses; products SKUs and prices."""
    folder, _ = shop_run
    customer = _lines(folder / "customers.jsonl")[0]
    assert " " in customer["name"] and "@" in customer["email"]
    assert set(customer["address"]) == {"street", "city", "zip"}
    product = _lines(folder / "products.jsonl")[0]
    assert len(product["sku"]) == 13 and 1 <= product["price"] <= 300
