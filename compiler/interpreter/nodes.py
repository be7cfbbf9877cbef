"""Positions and labels of `ast` nodes: the only facts about source text the other parts read directly.

Kept apart because every part needs them (a call site's location, a callee's dotted name, a short
label for a value that has no better name) and `dag.py` turns the interpreter's frames into the
compiler's output with the same labels.
"""

from __future__ import annotations

import ast

from compiler.values import Loc


def loc_of(node: ast.AST) -> Loc:
    return (
        getattr(node, "lineno", 0),
        getattr(node, "col_offset", 0),
        getattr(node, "end_lineno", 0) or 0,
        getattr(node, "end_col_offset", 0) or 0,
    )


def dotted_name(node: ast.AST) -> str:
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        elif isinstance(node, ast.Call):
            parts.append("()")
            node = node.func
        elif isinstance(node, ast.Subscript):
            parts.append("[]")
            node = node.value
        else:
            parts.append("?")
            break
    return ".".join(reversed(parts))


def short_source(node: ast.AST, limit: int = 80) -> str:
    try:
        text = ast.unparse(node)
    except (ValueError, TypeError, AttributeError, RecursionError):  # a label is not worth a crash
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def label(node: ast.AST) -> str:
    """The name a value without a better one is shown by: its source, cut at 40 characters."""
    return short_source(node, 40)


def short_name(qualname: str) -> str:
    """A function's own name: `Agent.run` -> `run`, `pkg.prompts:build` -> `build`."""
    return qualname.rpartition(":")[2].rsplit(".", 1)[-1]
