"""Row filters read from files: parsed into a small whitelisted form, never evaluated as code.

A filter the user types (``--trial-filter "success == True"``, ``trial_filter=`` in Python) is
theirs, and `ConditionMapper` evaluates it with ``DataFrame.eval`` (the pandas query language).
A filter read back from a file (a fitted model's mapper settings, read by
`ConditionMapper.from_settings` and ``nwb-jedi predict``) is someone else's: pandas' evaluator
resolves ``@names`` and calls, so ``@sys.modules['os'].system('...') == 0`` would run a shell
command. Such a filter becomes a `StoredQuery`: the text is parsed with Python's parser (which
only builds a syntax tree and evaluates nothing) and accepted only if every node is one of

- a column name (``success``, or ```with spaces``` in backquotes as pandas writes it), or the
  name of the table's index (``id``);
- a literal: a number, a string, ``True``/``False``/``None``, ``nan``, or a list/tuple of
  literals (for ``in`` / ``not in``);
- a comparison ``== != < <= > >= in not in`` (chains such as ``1 < x <= 3`` too) between a
  column and literals;
- ``and``/``or``/``not`` and their pandas spellings ``&``/``|``/``~``, and parentheses.

Anything else (attribute access, calls, subscripts, ``@`` names, arithmetic, comparisons of two
literals) is refused with one sentence that names the flag to give the filter yourself. The
accepted form is evaluated here on the table's columns, with pandas' semantics for these
operators (NaN compares unequal, ``in`` is ``Series.isin``), so a model's stored filter selects
the same trials it selected when the model was fitted.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from nwb_jedi.errors import UserError

__all__ = ["StoredQuery", "evaluate_query"]

#: Longest filter text accepted from a file (a filter is one line a person wrote).
MAX_QUERY_CHARS = 2000
#: Deepest nesting of the syntax tree accepted (parentheses, and/or chains).
MAX_QUERY_DEPTH = 50

_BACKQUOTED = re.compile(r"`([^`]*)`")
_COMPARISONS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
                ast.GtE: ">=", ast.In: "in", ast.NotIn: "not in"}
_NAMED_LITERALS = {"True": True, "False": False, "None": None, "nan": math.nan,
                   "NaN": math.nan}


class StoredQuery(str):
    """The text of a filter read from a file, checked to be a whitelisted expression.

    It is a `str` (equal to, and stored as, its text), so settings holding it round-trip
    unchanged; `ConditionMapper` evaluates it with `evaluate_query` instead of pandas.

    Parameters
    ----------
    text : str
        The filter, e.g. ``"success == True and trial_type in [1, 2]"``.
    setting : str
        The setting it was stored as (``trial_filter`` or ``unit_filter``), for messages.

    Raises
    ------
    UserError
        The text is not an expression of the whitelisted form; the message names the flag to
        pass the filter as one's own.
    """

    tree: ast.expr
    columns: dict[str, str]
    setting: str

    def __new__(cls, text: str, setting: str = "trial_filter") -> StoredQuery:
        self = super().__new__(cls, text)
        self.setting = setting
        self.tree, self.columns = _parse(str(text), setting)
        return self

    def __reduce__(self):  # copies and pickles rebuild (and re-check) from the text
        return (StoredQuery, (str(self), self.setting))


def _refuse(text: str, setting: str, why: str) -> UserError:
    flag = "--" + setting.replace("_", "-")
    shown = text if len(text) <= 120 else text[:117] + "..."
    return UserError(f"the stored {setting} {shown!r} {why}; nwb_jedi evaluates only simple "
                     f"filters read from files (columns compared with ==, !=, <, <=, >, >=, "
                     f"in, not in to numbers, strings, True/False/None, combined with and, or, "
                     f"not), so give the filter yourself with {flag} (or {setting}= in Python)")


def _parse(text: str, setting: str) -> tuple[ast.expr, dict[str, str]]:
    if len(text) > MAX_QUERY_CHARS:
        raise _refuse(text, setting, f"is {len(text)} characters long (at most "
                                     f"{MAX_QUERY_CHARS})")
    if "\x00" in text:
        raise _refuse(text, setting, "holds a NUL character")
    # pandas writes columns whose names are not identifiers in backquotes: give each a
    # placeholder identifier that cannot clash with a real name.
    columns: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        name = f"__nwb_jedi_column_{len(columns)}__"
        columns[name] = match.group(1)
        return name

    source = _BACKQUOTED.sub(placeholder, text)
    try:
        tree = ast.parse(source.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise _refuse(text, setting, "is not a valid expression") from None
    _check(tree, text, setting, depth=0)
    return tree, columns


def _check(node: ast.AST, text: str, setting: str, depth: int) -> None:
    """Accept only the whitelisted node types (see the module docstring)."""
    if depth > MAX_QUERY_DEPTH:
        raise _refuse(text, setting, f"is nested more than {MAX_QUERY_DEPTH} levels deep")
    if isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text, setting, depth + 1)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
        _check(node.left, text, setting, depth + 1)
        _check(node.right, text, setting, depth + 1)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.Invert):
        _check(node.operand, text, setting, depth + 1)
    elif isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        if not all(type(op) in _COMPARISONS for op in node.ops):
            raise _refuse(text, setting, "uses a comparison other than ==, !=, <, <=, >, >=, "
                                         "in, not in")
        if not any(isinstance(o, ast.Name) and o.id not in _NAMED_LITERALS for o in operands):
            raise _refuse(text, setting, "compares values without naming a column")
        for operand in operands:
            _check_operand(operand, text, setting)
    elif isinstance(node, ast.Name) and node.id not in _NAMED_LITERALS:
        return  # a boolean column on its own
    else:
        raise _refuse(text, setting, f"contains {_describe(node)}, which is not a column, a "
                                     f"literal, a comparison or and/or/not")


def _check_operand(node: ast.AST, text: str, setting: str) -> None:
    if isinstance(node, ast.Name):
        return
    if isinstance(node, ast.List | ast.Tuple):
        for item in node.elts:
            _literal(item, text, setting)
        return
    _literal(node, text, setting)


def _literal(node: ast.AST, text: str, setting: str) -> Any:
    """The value of a literal node (numbers, strings, True/False/None, nan, -number)."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(
            node.value, bool | int | float | str)):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED_LITERALS:
        return _NAMED_LITERALS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) and \
            isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, int | float) \
            and not isinstance(node.operand.value, bool):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    raise _refuse(text, setting, f"contains {_describe(node)} where a literal value belongs")


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Attribute):
        return "an attribute access"
    if isinstance(node, ast.Subscript):
        return "a subscript"
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return "arithmetic"
    return f"a {type(node).__name__} expression"


# ---------------------------------------------------------------------------------- evaluation
def evaluate_query(query: StoredQuery, table: pd.DataFrame) -> np.ndarray:
    """Evaluate a `StoredQuery` on `table`: one boolean per row, by position.

    Raises
    ------
    UserError
        The filter names a column the table does not have, or compares values that cannot be
        compared (e.g. text with a number by ``<``).
    """
    return _as_mask(_evaluate(query.tree, query, table), len(table))


def _as_mask(value: Any, n: int) -> np.ndarray:
    if isinstance(value, pd.Series):
        return value.fillna(False).to_numpy(dtype=bool)
    return np.full(n, bool(value))


def _evaluate(node: ast.AST, query: StoredQuery, table: pd.DataFrame) -> Any:
    n = len(table)
    if isinstance(node, ast.BoolOp):
        masks = [_as_mask(_evaluate(v, query, table), n) for v in node.values]
        out = masks[0]
        for mask in masks[1:]:
            out = out & mask if isinstance(node.op, ast.And) else out | mask
        return pd.Series(out)
    if isinstance(node, ast.BinOp):
        left = _as_mask(_evaluate(node.left, query, table), n)
        right = _as_mask(_evaluate(node.right, query, table), n)
        return pd.Series(left & right if isinstance(node.op, ast.BitAnd) else left | right)
    if isinstance(node, ast.UnaryOp):
        return pd.Series(~_as_mask(_evaluate(node.operand, query, table), n))
    if isinstance(node, ast.Compare):
        return _compare(node, query, table)
    if isinstance(node, ast.Name):
        return _column(node.id, query, table)
    raise AssertionError("unreachable: the tree was checked")  # pragma: no cover


def _column(name: str, query: StoredQuery, table: pd.DataFrame) -> pd.Series:
    name = query.columns.get(name, name)
    if name in table.columns:
        return table[name].reset_index(drop=True)
    if table.index.name == name:
        return pd.Series(table.index.to_numpy())
    columns = ", ".join(str(c) for c in table.columns) or "none"
    raise UserError(f"the stored {query.setting} {str(query)!r} names column {name!r}, which "
                    f"is not in the table (columns: {columns})")


def _operand(node: ast.AST, query: StoredQuery, table: pd.DataFrame) -> Any:
    if isinstance(node, ast.Name) and node.id not in _NAMED_LITERALS:
        return _column(node.id, query, table)
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(item, str(query), "filter") for item in node.elts]
    return _literal(node, str(query), "filter")


def _compare(node: ast.Compare, query: StoredQuery, table: pd.DataFrame) -> pd.Series:
    operands = [_operand(o, query, table) for o in [node.left, *node.comparators]]
    out = pd.Series(np.ones(len(table), dtype=bool))
    for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
        try:
            out &= _as_mask(_compare_pair(type(op), left, right), len(table))
        except TypeError as err:
            flag = "--" + query.setting.replace("_", "-")
            raise UserError(f"the stored {query.setting} {str(query)!r} compares values that "
                            f"cannot be compared ({err}); give the filter yourself with {flag}"
                            ) from None
    return out


def _compare_pair(op: type, left: Any, right: Any) -> Any:
    if op in (ast.In, ast.NotIn):
        if not isinstance(left, pd.Series) or isinstance(right, pd.Series):
            raise TypeError("'in' needs a column on the left and a list on the right")
        values = right if isinstance(right, list) else [right]
        inside = left.isin(values)
        return inside if op is ast.In else ~inside
    if not isinstance(left, pd.Series):  # literal OP column: flip it around
        left, right = right, left
        op = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE}.get(op, op)
    if isinstance(right, list):
        raise TypeError(f"a list can only follow 'in' or 'not in', not {_COMPARISONS[op]}")
    return {ast.Eq: left.__eq__, ast.NotEq: left.__ne__, ast.Lt: left.__lt__,
            ast.LtE: left.__le__, ast.Gt: left.__gt__, ast.GtE: left.__ge__}[op](right)
