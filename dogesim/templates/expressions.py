"""A small, safe expression language for payload templates.

- `compile_expression`: checks the text of an expression against a whitelist and returns
  the Python source of an equivalent expression over the mapper's locals, plus the helper
  functions it needs.
- `NAMES_EVENT`, `NAMES_KEY`, `NAMES_SUBJECT`: the names an expression may use in an event
  template, a key template and a subject template.
- `FUNCTIONS`: the functions an expression may call.
- `MAX_LENGTH`, `MAX_NODES`: the size bounds of one expression.

The text is parsed with `ast` (expression mode) and every node is checked: literals
(numbers, strings, booleans, None, tuples, lists), arithmetic, comparisons,
``and``/``or``/``not``, ``x if c else y``, attribute access on ``subject`` (no names
starting with ``_``), indexing by a constant, and calls of the whitelisted functions with
positional arguments. Anything else (other names, lambdas, comprehensions, keyword
arguments, ``**`` with a non-constant or large exponent) is refused with a `ModelError` at
compile time, so nothing but arithmetic on the event's values ever runs. A product of two
non-constant operands is computed inline when both are numbers, else by `_times`, which
refuses to repeat a string or list into more than `MAX_REPEAT` items (``'x' * subject.n``
cannot exhaust memory).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from dogesim.errors import ModelError, shown

__all__ = [
    "FUNCTIONS",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_REPEAT",
    "NAMES_EVENT",
    "NAMES_KEY",
    "NAMES_SUBJECT",
    "compile_expression",
]

#: Longest expression text accepted, in characters.
MAX_LENGTH = 1000
#: Most AST nodes in one expression.
MAX_NODES = 200
#: Largest constant exponent of ``**``.
MAX_EXPONENT = 256
#: Most items a string or list may be repeated into by ``*``.
MAX_REPEAT = 100_000


def _times(left: Any, right: Any) -> Any:
    """``left * right``, refusing sequence repetitions beyond `MAX_REPEAT` items."""
    result_size = 0
    if isinstance(left, (str, list, tuple, bytes)) and isinstance(right, int):
        result_size = len(left) * right
    elif isinstance(right, (str, list, tuple, bytes)) and isinstance(left, int):
        result_size = len(right) * left
    if result_size > MAX_REPEAT:
        raise ValueError(f"repetition of {result_size} items exceeds {MAX_REPEAT}")
    return left * right


#: The types whose products need no repetition guard.
_NUMBERS = frozenset({int, float})

#: Functions callable from expressions, by name.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "bool": bool,
    "float": float,
    "int": int,
    "len": len,
    "max": max,
    "min": min,
    "round": round,
    "str": str,
}

#: Names usable in an event template and the mapper-local code each becomes.
NAMES_EVENT: dict[str, str] = {
    "subject": "subject",
    "timestamp": "timestamp",
    "trigger": "transition.trigger",
    "from_state": "transition.from_state",
    "to_state": "transition.to_state",
}
#: Names usable in a key template (a Kafka key function has no timestamp).
NAMES_KEY: dict[str, str] = {k: v for k, v in NAMES_EVENT.items() if k != "timestamp"}
#: Names usable in a subject template (no event yet): only the subject's creation index.
NAMES_SUBJECT: dict[str, str] = {"index": "index"}

_OPERATORS = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Not,
    ast.And,
    ast.Or,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Load,
)
_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.Tuple,
    ast.List,
    *_OPERATORS,
)


class _Checker:
    """Checks one parsed expression; `error` builds the message naming the field path."""

    def __init__(self, path: str, text: str, names: Mapping[str, str]) -> None:
        self.path = path
        self.text = text
        self.names = names
        self.uses: set[str] = set()

    def error(self, why: str) -> ModelError:
        return ModelError(f"{self.path}: expression {shown(self.text)}: {why}")

    def check(self, node: ast.AST) -> None:
        if not isinstance(node, _NODES):
            raise self.error(
                f"{type(node).__name__} is not allowed; use arithmetic, "
                "comparisons, subject attributes and " + ", ".join(FUNCTIONS)
            )
        if isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Attribute):
            self._attribute(node)
        elif isinstance(node, ast.Subscript):
            if not isinstance(node.slice, ast.Constant) or isinstance(node.slice.value, bool):
                raise self.error("an index must be a constant number or string")
        elif isinstance(node, ast.Call):
            self._call(node)
            return
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right
            if not (
                isinstance(exponent, ast.Constant)
                and isinstance(exponent.value, (int, float))
                and not isinstance(exponent.value, bool)
                and abs(exponent.value) <= MAX_EXPONENT
            ):
                raise self.error(f"the exponent of ** must be a constant of at most {MAX_EXPONENT}")
        elif isinstance(node, ast.Constant) and not isinstance(
            node.value, (int, float, str, bool, type(None))
        ):
            raise self.error(f"constant {shown(node.value)} is not a number, string or None")
        for child in ast.iter_child_nodes(node):
            self.check(child)

    def _name(self, node: ast.Name) -> None:
        if node.id in FUNCTIONS:
            raise self.error(f"{node.id!r} is a function; call it, e.g. {node.id}(...)")
        if node.id not in self.names:
            raise self.error(f"unknown name {node.id!r}; names are {', '.join(self.names)}")
        self.uses.add(node.id)

    def _attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            raise self.error(f"attribute {node.attr!r} starts with '_'; it is not accessible")
        root: ast.AST = node
        while isinstance(root, (ast.Attribute, ast.Subscript)):
            root = root.value
        if not (isinstance(root, ast.Name) and root.id == "subject"):
            raise self.error("attributes can only be read from subject (e.g. subject.balance)")

    def _call(self, node: ast.Call) -> None:
        if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise self.error(f"only these functions can be called: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise self.error("functions take positional arguments only")
        for arg in node.args:
            self.check(arg)
        # The callee is bound to its helper here; it is not a value the user can reach.
        node.func.id = f"_fn_{node.func.id}"


def _load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def _is_numeric(name: str, value: ast.expr) -> ast.Compare:
    """``(name := value).__class__ in _numbers``: an attribute read, not a call, per event.

    (Only Python code can make ``__class__`` lie, and a model file defines no classes: a
    string from the file or from Faker still takes the guarded `_times`.)"""
    bound = ast.NamedExpr(target=ast.Name(id=name, ctx=ast.Store()), value=value)
    return ast.Compare(
        left=ast.Attribute(value=bound, attr="__class__", ctx=ast.Load()),
        ops=[ast.In()],
        comparators=[_load("_numbers")],
    )


class _Renamer(ast.NodeTransformer):
    """Maps expression names to the mapper's locals; guards risky products with `_times`."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names
        self.count = 0

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id.startswith("_fn_"):
            return node
        return ast.parse(self.names[node.id], mode="eval").body

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Mult) and not (_is_number(node.left) or _is_number(node.right)):
            # Two numbers multiply inline (no call per event); anything else goes through
            # `_times`. `&` evaluates both tests, so both operands are bound, left first.
            self.count += 1
            a, b = f"_m{self.count}a", f"_m{self.count}b"
            return ast.IfExp(
                test=ast.BinOp(
                    left=_is_numeric(a, node.left),
                    op=ast.BitAnd(),
                    right=_is_numeric(b, node.right),
                ),
                body=ast.BinOp(left=_load(a), op=ast.Mult(), right=_load(b)),
                orelse=ast.Call(func=_load("_times"), args=[_load(a), _load(b)], keywords=[]),
            )
        return node


def _is_number(node: ast.AST) -> bool:
    """A numeric literal (a product with one can never be a huge repetition)."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
        and abs(node.value) <= MAX_REPEAT
    )


def compile_expression(
    text: object, path: str, names: Mapping[str, str] = NAMES_EVENT
) -> tuple[str, dict[str, Any], frozenset[str]]:
    """The checked Python source of expression `text`, its helpers and the names it uses.

    Args:
        text: the expression, e.g. ``"round(subject.balance * 1.1, 2)"``.
        path: the field path, for messages (``value.total``).
        names: the names the expression may use and the local code each becomes.

    Returns:
        ``(source, helpers, uses)``: source over the mapper's locals, the helper functions
        the source calls (``_fn_round`` ..., ``_times``), and the expression names used.

    Raises:
        ModelError: the text is not a string, too long or too big, does not parse, or uses
            anything outside the whitelist; the message names `path` and the text.
    """
    if not isinstance(text, str):
        raise ModelError(f"{path}: expression {shown(text)} is not a string")
    if len(text) > MAX_LENGTH:
        raise ModelError(
            f"{path}: expression of {len(text)} characters is too long (at most {MAX_LENGTH})"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ModelError(f"{path}: expression {shown(text)} does not parse: {exc.msg}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ModelError(
            f"{path}: expression {shown(text)} has {count} parts, more than {MAX_NODES}"
        )
    checker = _Checker(path, text, names)
    checker.check(tree)
    tree = ast.fix_missing_locations(_Renamer(names).visit(tree))
    source = ast.unparse(tree)
    helpers: dict[str, Any] = {f"_fn_{name}": fn for name, fn in FUNCTIONS.items()}
    helpers["_times"] = _times
    helpers["_type"] = type
    helpers["_numbers"] = _NUMBERS
    return f"({source})", helpers, frozenset(checker.uses)
