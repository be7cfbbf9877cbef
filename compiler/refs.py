"""Structured references: the expressions a replay evaluates, as `compiler.model.Ref` trees.

The executor replays a compiled agent on real inputs (`executor/binding.py`): it looks the names of
dynamic segments up in an input record and runs loop headers over it. It needs those expressions as
data, not as source text to parse again, so the compiler emits both: the string for people, the tree
for the replay. A loop's iterable and target are converted from their `ast` nodes; a dynamic part is
named by text all through the interpreter (its label is built as values flow), so its tree is made
from that text, once per distinct name.

Bounded, since the expressions come from agent files: a tree over `MAX_REF_NODES` nodes or
`MAX_REF_DEPTH` levels, or text over `MAX_REF_TEXT` characters, gives no reference at all, and a
part a replay cannot evaluate is kept as `RefOther` with its source cut at `MAX_OTHER_CHARS`.
"""

from __future__ import annotations

import ast
import math
import warnings
from typing import Literal

from compiler.interpreter.nodes import short_source
from compiler.model import (
    MAX_REF_DEPTH,
    MAX_REF_NODES,
    Ref,
    RefAttribute,
    RefBinOp,
    RefCall,
    RefConstant,
    RefName,
    RefOther,
    RefSubscript,
    RefTuple,
)

MAX_REF_TEXT = 512
MAX_OTHER_CHARS = 200
_OPS: dict[type[ast.operator], Literal["+", "-", "*"]] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


class _TooLarge(Exception):
    pass


def ref_of_node(node: ast.AST) -> Ref | None:
    """The expression as a reference; None when it is over the bounds."""
    try:
        return _convert(node, 1, [MAX_REF_NODES])
    except _TooLarge:
        return None


def ref_of_text(text: str, cache: dict[str, Ref | None] | None = None) -> Ref | None:
    """Source text of an expression as a reference; None when it is not one or is over the bounds."""
    if cache is not None and text in cache:
        return cache[text]
    ref: Ref | None = None
    if len(text) <= MAX_REF_TEXT:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. an invalid escape in a label: not ours to report
                node = ast.parse(text, mode="eval").body
        except (
            SyntaxError,
            ValueError,
            RecursionError,
            MemoryError,
        ):  # a label cut short ("..."), a null byte
            node = None
        if node is not None:
            ref = ref_of_node(node)
    if cache is not None:
        cache[text] = ref
    return ref


def _convert(node: ast.AST, depth: int, budget: list[int]) -> Ref:
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_REF_DEPTH:
        raise _TooLarge
    t = type(node)
    if t is ast.Name:
        assert isinstance(node, ast.Name)
        return RefName(name=node.id)
    if t is ast.Constant:
        assert isinstance(node, ast.Constant)
        value = node.value
        if (
            value is None
            or isinstance(value, bool | int | str)
            or (isinstance(value, float) and math.isfinite(value))
        ):
            return RefConstant(value=value)
    elif t is ast.Attribute:
        assert isinstance(node, ast.Attribute)
        return RefAttribute(value=_convert(node.value, depth + 1, budget), attr=node.attr)
    elif t is ast.Subscript:
        assert isinstance(node, ast.Subscript)
        return RefSubscript(
            value=_convert(node.value, depth + 1, budget), index=_convert(node.slice, depth + 1, budget)
        )
    elif t is ast.Call:
        assert isinstance(node, ast.Call)
        args = [_convert(a, depth + 1, budget) for a in node.args]
        return RefCall(func=_convert(node.func, depth + 1, budget), args=args)
    elif t is ast.Tuple or t is ast.List:
        assert isinstance(node, ast.Tuple | ast.List)
        return RefTuple(elts=[_convert(e, depth + 1, budget) for e in node.elts], is_list=t is ast.List)
    elif t is ast.BinOp:
        assert isinstance(node, ast.BinOp)
        op = _OPS.get(type(node.op))
        if op is not None:
            return RefBinOp(
                op=op,
                left=_convert(node.left, depth + 1, budget),
                right=_convert(node.right, depth + 1, budget),
            )
    return RefOther(text=short_source(node, MAX_OTHER_CHARS))
