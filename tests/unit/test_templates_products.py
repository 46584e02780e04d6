"""Products in template expressions: numbers multiply inline, repetitions stay guarded."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from dogesim.errors import ModelError
from dogesim.model import Transition
from dogesim.templates import compile_template

MOVE = Transition("buy", "a", "b", 10)


@pytest.mark.parametrize(
    ("expr", "subject", "expected"),
    [
        ("subject.a * subject.b * subject.c", {"a": 2, "b": 3.5, "c": 4}, 28.0),
        ("round(subject.a * subject.b, 2)", {"a": 3, "b": 0.1}, 0.3),
        ("subject.s * subject.a", {"s": "ab", "a": 3}, "ababab"),
        ("subject.a * subject.s", {"s": "x", "a": 2}, "xx"),
        ("(subject.a * subject.b) * (subject.b * subject.a)", {"a": 2, "b": 5}, 100),
        ("subject.t * subject.a", {"t": True, "a": 7}, 7),
    ],
)
def test_products_give_what_python_gives(expr: str, subject: dict, expected: object) -> None:
    """Each product equals Python's, whatever the operand types (bool, str, nesting)."""
    mapper = compile_template({"v": {"expr": expr}})
    assert mapper(0, SimpleNamespace(**subject), MOVE) == {"v": expected}


def test_a_huge_repetition_is_still_refused_at_the_event() -> None:
    """A string repeated past the limit fails with a ModelError naming the field."""
    mapper = compile_template({"pad": {"expr": "subject.s * subject.n"}})
    with pytest.raises(ModelError, match=r"^value\.pad: .*exceeds"):
        mapper(0, SimpleNamespace(s="xy", n=10**6), MOVE)


def test_a_reference_to_a_list_is_a_model_error() -> None:
    """``ref: [customers]`` names no population: a ModelError (found by the fuzz test)."""
    from dogesim.relations import EntityPool

    with pytest.raises(ModelError, match=r"^value\.c: population \['customers'\] is not a name"):
        compile_template({"c": {"ref": ["customers"]}}, pools={"customers": EntityPool("c")})


def test_pick_by_is_ref_with_law() -> None:
    """``{pick: customers, by: zipf, s: 1.1}`` picks as ``{ref: customers, law: zipf, s: 1.1}``."""
    from dogesim.relations import EntityPool

    pool = EntityPool("customers")
    for i in range(50):
        pool.add(i)
    picked = compile_template(
        {"c": {"pick": "customers", "by": "zipf", "s": 1.1}}, pools={"customers": pool}, seed=3
    )
    referred = compile_template(
        {"c": {"ref": "customers", "law": "zipf", "s": 1.1}}, pools={"customers": pool}, seed=3
    )
    subject = SimpleNamespace(id=0)
    assert [picked(0, subject, MOVE) for _ in range(30)] == [
        referred(0, subject, MOVE) for _ in range(30)
    ]
    with pytest.raises(ModelError, match="give either law or by"):
        compile_template(
            {"c": {"pick": "customers", "by": "zipf", "law": "uniform"}}, pools={"customers": pool}
        )
