"""Restructuring codemods for the anti-patterns, shown as unified diffs.

Each fix rewrites one prompt-building expression (an f-string or a `+` chain) with libcst, which keeps
every byte it does not touch: the expression's exact span comes from `ast` positions, only that span
is parsed with libcst, its parts are reordered, and the new code is spliced back. The rewritten file
must parse, or the fix is dropped. Fixes are never applied here; the CLI applies them only on `--fix`.

- MISPLACED_SHARED_CONTEXT: the shared input moves right after the prefix the calls already have in
  common, followed by a blank line; the call-specific text follows in its old order.
- DYNAMIC_PREFIX: the dynamic lead (e.g. `Current time: {now}\\n`) moves behind the static text.
"""

from __future__ import annotations

import ast
import difflib
import functools
import re
from dataclasses import dataclass
from typing import cast

import libcst as cst

from compiler.model import Finding, Fix, PatternKind
from compiler.patterns import dynamic_prefix, misplaced_shared_context
from compiler.patterns.base import Context
from compiler.prefix import Unit, units_of
from compiler.tokens import estimate_tokens
from compiler.values import Dyn, Loc, Text

WARNING = (
    "Reordering a prompt changes what the model sees: check that instructions which referred to "
    "text 'below' or 'from:' still read correctly, and re-run your evaluations before deploying."
)
_EMPTY = cst.Module(body=[])


@dataclass(frozen=True)
class Edit:
    loc: Loc
    new_code: str


@functools.lru_cache(maxsize=4)
def _offsets(source: str) -> list[int]:
    """Character offset of each line start, computed once per source (str caches its own hash)."""
    return _line_starts(source)


_NEWLINE = re.compile(r"\r\n|\r|\n")


def source_lines(source: str) -> list[str]:
    """Lines as Python numbers them: only \\n, \\r\\n and \\r end a line.

    `str.splitlines` also splits on form feeds, \\x1c-\\x1e and U+2028, which would shift every
    line after one of them against `ast` positions.
    """
    out: list[str] = []
    pos = 0
    for m in _NEWLINE.finditer(source):
        out.append(source[pos : m.end()])
        pos = m.end()
    if pos < len(source):
        out.append(source[pos:])
    return out


@functools.lru_cache(maxsize=4)
def _cached_lines(source: str) -> tuple[str, ...]:
    """The file's lines once per source: each fix's diff window is cut from them."""
    return tuple(source_lines(source))


def _line_starts(source: str) -> list[int]:
    starts = [0]
    for line in source_lines(source):
        starts.append(starts[-1] + len(line))
    return starts


def _char_index(source: str, starts: list[int], line: int, byte_col: int) -> int:
    line_start = starts[line - 1]
    line_text = source[line_start : starts[line] if line < len(starts) else len(source)]
    return line_start + len(line_text.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def _span(source: str, starts: list[int], loc: Loc) -> tuple[int, int]:
    return _char_index(source, starts, loc[0], loc[1]), _char_index(source, starts, loc[2], loc[3])


def _code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def _parse_expr(code: str) -> cst.BaseExpression | None:
    for text in (code, f"({code})"):
        try:
            return cst.parse_expression(text)
        except Exception:  # noqa: BLE001, S112 - a fix is optional: whatever libcst raises, offer none
            continue
    return None


class _Operands:
    """An f-string's parts or a `+` chain's operands, rebuildable in a new order."""

    def __init__(self, node: cst.BaseExpression) -> None:
        self.node = node
        self.fstring = isinstance(node, cst.FormattedString)
        if isinstance(node, cst.FormattedString):
            self.items: list[cst.CSTNode] = list(node.parts)
        else:
            items: list[cst.CSTNode] = []
            cur: cst.BaseExpression = node
            while isinstance(cur, cst.BinaryOperation) and isinstance(cur.operator, cst.Add):
                items.append(cur.right)
                cur = cur.left
            items.append(cur)
            self.items = list(reversed(items))

    @property
    def ok(self) -> bool:
        return self.fstring or len(self.items) > 1

    def code(self, item: cst.CSTNode) -> str:
        if isinstance(item, cst.FormattedStringText):
            return item.value
        if isinstance(item, cst.FormattedStringExpression):
            return _code(item.expression)
        return _code(item)

    def is_text(self, item: cst.CSTNode) -> bool:
        return isinstance(item, cst.FormattedStringText)

    def literal(self, item: cst.CSTNode) -> str | None:
        """The source text of a literal part (f-string text, or a plain one-line "..." operand), else None."""
        if isinstance(item, cst.FormattedStringText):
            return item.value
        if isinstance(item, cst.SimpleString) and not self.fstring:
            v = item.value
            if len(v) >= 2 and v[0] == v[-1] == '"' and not v.startswith('"""'):
                return v[1:-1]
        return None

    def text(self, raw: str) -> cst.CSTNode:
        if self.fstring:
            return cst.FormattedStringText(raw)
        return cst.SimpleString(f'"{raw}"')

    def separator(self) -> cst.CSTNode:
        return self.text("\\n\\n")

    def rebuild(self, items: list[cst.CSTNode]) -> str:
        items = [i for i in items if not (isinstance(i, cst.FormattedStringText) and i.value == "")]
        if self.fstring:
            return _code(self.node.with_changes(parts=items))
        # Not an f-string: the items are the operands of a `+` chain (and strings from text()), all expressions.
        operands = cast(list[cst.BaseExpression], items)
        expr = operands[0]
        for nxt in operands[1:]:
            expr = cst.BinaryOperation(left=expr, operator=cst.Add(), right=nxt)
        return _code(expr)


def _safe_cut(raw: str, n: int) -> int:
    """Do not split a backslash escape or a doubled brace of f-string source text."""
    while n > 0:
        k = 0
        while n - 1 - k >= 0 and raw[n - 1 - k] == "\\":
            k += 1
        if k % 2 == 1:
            n -= 1
            continue
        if raw[n - 1] in "{}" and n < len(raw) and raw[n] == raw[n - 1]:
            n -= 1
            continue
        break
    return n


def _build_loc(prompt: Text, key: str | None = None, first_dynamic: bool = False) -> Loc | None:
    for part in prompt.parts:
        if isinstance(part, Dyn) and (first_dynamic or part.ident == key):
            return part.build
    return None


def _misplaced_edits(source: str, finding: Finding, prompts: dict[str, Text]) -> list[Edit]:
    key = str(finding.figures["input_key"])
    name = str(finding.figures["input"])
    locs: list[Loc] = []
    for cid in finding.calls:
        loc = _build_loc(prompts[cid], key)
        if loc is None or loc[0] <= 0:
            return []
        if loc not in locs:
            locs.append(loc)
    if len(locs) < 2:
        return []
    starts = _offsets(source)
    ops: list[_Operands] = []
    for loc in locs:
        a, b = _span(source, starts, loc)
        node = _parse_expr(source[a:b])
        if node is None:
            return []
        o = _Operands(node)
        if not o.ok:
            return []
        ops.append(o)
    if len({o.fstring for o in ops}) != 1:
        return []
    codes = [[o.code(i) for i in o.items] for o in ops]
    k = 0
    while all(k < len(c) for c in codes) and len({c[k] for c in codes}) == 1 and codes[0][k] != name:
        k += 1
    split = 0
    if all(k < len(c) for c in codes) and all(o.is_text(o.items[k]) for o in ops):
        raws = [c[k] for c in codes]
        split = _word_cut(raws[0], _safe_cut(raws[0], len(_common_prefix(raws))))
    edits: list[Edit] = []
    for loc, o, c in zip(locs, ops, codes):
        if name not in c:
            return []
        at = c.index(name)
        moved = o.items[at]
        head = list(o.items[:k])
        rest = [i for i in o.items[k:] if i is not moved]
        label = o.items[at - 1] if at > 0 else None
        raw_label = o.literal(label) if label is not None and label in rest else None
        if label is not None and raw_label is not None:
            # The label that introduced the input ("Extract entities from:") stays where it was, so it now
            # points back at the moved text instead of dangling at the end of the prompt.
            rest[rest.index(label)] = o.text(_point_back(raw_label, name))
        if split and rest and o.is_text(rest[0]):
            raw = o.code(rest[0])
            head.append(o.text(raw[:split]))
            rest[0] = o.text(raw[split:])
        new = o.rebuild(head + [o.text(_label_line(name)), moved, o.separator()] + rest)
        edits.append(Edit(loc, new))
    return edits


# A label line at the end of source text: words ending in a colon, then line breaks (escapes or real).
_LABEL = re.compile(r"(?P<label>[A-Za-z][^:\\\n]*?):(?P<trail>(?:\\n|\n|[ \t])*)$")


def _label_line(name: str) -> str:
    """The neutral label put before the moved input, the same in every call so the prefix stays shared:
    `document_text` -> "Document text:" and a line break (as source text of a string literal)."""
    words = name.replace("_", " ").strip() or "input"
    return f"{words[0].upper()}{words[1:]}:\\n"


def _point_back(raw: str, name: str) -> str:
    """`raw` with a trailing label that introduced the moved input turned into a reference to it:
    "Extract entities from:" -> "Extract entities from the document above.", "Classify document:" ->
    "Classify document above.". Text without such a label is returned unchanged."""
    m = _LABEL.search(raw)
    if m is None:
        return raw
    label = m.group("label").rstrip()
    words = name.replace("_", " ").strip()
    named = label.lower().endswith((words.lower(), name.lower()))
    refer = "above" if named else f"the {words} above"
    return f"{raw[: m.start()]}{label} {refer}.{m.group('trail')}"


def _word_cut(raw: str, n: int) -> int:
    """Cut shared source text after its last line break (a newline escape or a real newline), else after its
    last space: the input moves between lines, never into one ("List the {x} parties") or a word ("Pa|rties").
    Same rule as the detector's `word_boundary`, which measures this rewrite."""
    for i in range(n - 1, -1, -1):
        if raw[i] == "\n" or (raw[i] == "n" and _escaped(raw, i)):
            return i + 1
    for i in range(n - 1, -1, -1):
        if raw[i] == " ":
            return i + 1
    return 0


def _escaped(raw: str, i: int) -> bool:
    """True when raw[i] follows an odd run of backslashes (an escape, not a literal backslash)."""
    k = 0
    while i - 1 - k >= 0 and raw[i - 1 - k] == "\\":
        k += 1
    return k % 2 == 1


def _common_prefix(texts: list[str]) -> str:
    first = min(texts)
    last = max(texts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _dynamic_prefix_edits(
    source: str, finding: Finding, prompts: dict[str, Text], static_names: dict[str, str]
) -> list[Edit]:
    loc = _build_loc(prompts[finding.calls[0]], first_dynamic=True)
    if loc is None or loc[0] <= 0:
        return []
    starts = _offsets(source)
    a, b = _span(source, starts, loc)
    node = _parse_expr(source[a:b])
    if node is None:
        return []
    o = _Operands(node)
    if not o.ok:
        return []

    def static_len(item: cst.CSTNode) -> int:
        code = o.code(item)
        if o.is_text(item):
            return estimate_tokens(code)
        if isinstance(item, cst.SimpleString | cst.ConcatenatedString):
            try:
                return estimate_tokens(str(ast.literal_eval(code)))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):  # not a plain literal
                return -1
        return estimate_tokens(static_names[code]) if code in static_names else -1

    sizes = [static_len(i) for i in o.items]
    first_dyn = next((i for i, s in enumerate(sizes) if s < 0), None)
    if first_dyn is None:
        return []
    long_idx = next((i for i in range(first_dyn + 1, len(sizes)) if sizes[i] >= 64), None)
    if long_idx is None:
        return []
    new = o.rebuild(o.items[long_idx:] + [o.separator()] + o.items[:long_idx])
    return [Edit(loc, new)]


def _apply(source: str, edits: list[Edit], validate: bool = True) -> str | None:
    starts = _offsets(source)
    spans = sorted(((*_span(source, starts, e.loc), e.new_code) for e in edits), reverse=True)
    out = source
    last_start = len(source) + 1
    for a, b, new in spans:
        if b > last_start:
            continue  # overlapping edit: the first one wins
        out = out[:a] + new + out[b:]
        last_start = a
    if validate:
        try:
            ast.parse(out)
        except SyntaxError:
            return None
    return out


_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", re.MULTILINE)
DIFF_CONTEXT = 3


def _valid_snippet(code: str) -> bool:
    try:
        ast.parse(f"(\n{code}\n)", mode="eval")
        return True
    except SyntaxError:
        return False


def _local_diff(path: str, source: str, edits: list[Edit]) -> str:
    """The unified diff of one fix, computed over the lines it touches (plus context) only.

    Diffing the whole file once per fix made compile time quadratic in the number of findings.
    """
    lines = _cached_lines(source)
    first = max(1, min(e.loc[0] for e in edits) - DIFF_CONTEXT)
    last = min(len(lines), max(e.loc[2] for e in edits) + DIFF_CONTEXT)
    window = "".join(lines[first - 1 : last])
    shifted = [
        Edit((e.loc[0] - first + 1, e.loc[1], e.loc[2] - first + 1, e.loc[3]), e.new_code) for e in edits
    ]
    new_window = _apply(window, shifted, validate=False)
    if new_window is None or new_window == window:
        return ""
    diff = "".join(
        difflib.unified_diff(
            source_lines(window),
            source_lines(new_window),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
            n=DIFF_CONTEXT,
        )
    )
    offset = first - 1

    def shift(m: re.Match[str]) -> str:
        return (
            f"@@ -{int(m.group(1)) + offset}{m.group(2) or ''} "
            f"+{int(m.group(3)) + offset}{m.group(4) or ''} @@"
        )

    return _HUNK.sub(shift, diff)


def plan_fixes(
    source: str,
    path: str,
    ctx: Context,
    findings: list[Finding],
    prompts: dict[str, Text],
    static_names: dict[str, str],
) -> tuple[list[Fix], dict[str, list[Unit]], list[Edit]]:
    """One `Fix` per anti-pattern finding, the call shapes after all fixes (for the plan), and the edits."""
    fixes: list[Fix] = []
    all_edits: list[Edit] = []
    shapes: dict[str, list[Unit]] = {}
    for f in findings:
        if f.kind is PatternKind.MISPLACED_SHARED_CONTEXT:
            edits = _misplaced_edits(source, f, prompts)
            shapes.update(misplaced_shared_context.reorder(ctx, f.calls, str(f.figures["input_key"])))
            what = (
                f"move `{f.figures['input']}` right after the prefix {', '.join(f.calls)} share, "
                f"before their call-specific text"
            )
        elif f.kind is PatternKind.DYNAMIC_PREFIX:
            edits = _dynamic_prefix_edits(source, f, prompts, static_names)
            call = ctx.by_id[f.calls[0]]
            segs = call.segments
            first_dyn = next(i for i, s in enumerate(segs) if s.kind == "dynamic")
            long_static = next(
                i
                for i in range(first_dyn + 1, len(segs))
                if segs[i].kind == "static" and not segs[i].synthetic and segs[i].tokens >= 64
            )
            lead = first_dyn
            while lead > 0 and not segs[lead - 1].synthetic:
                lead -= 1
            shapes[call.id] = dynamic_prefix.restructure(units_of(segs), long_static, lead)
            what = f"move `{f.figures['dynamic_segment']}` and the text around it behind the static text"
        else:
            continue
        if any(ctx.by_id[c].module for c in f.calls):
            edits = []  # the call is in another module of the project, not in the file being rewritten
        edits = [e for e in edits if _valid_snippet(e.new_code)]
        diff = _local_diff(path, source, edits) if edits else ""
        fixes.append(
            Fix(
                pattern=f.kind,
                calls=f.calls,
                description=what if diff else what + " (not rewritable automatically here: edit by hand)",
                diff=diff,
                cacheable_share_before=f.number("cacheable_share_before"),
                cacheable_share_after=f.number("cacheable_share_after"),
                warning=WARNING,
            )
        )
        if diff:
            all_edits.extend(edits)
    return fixes, shapes, all_edits


def apply_edits(source: str, edits: list[Edit]) -> str:
    """The source with all the edits applied together (unchanged if there are none or they break it)."""
    if not edits:
        return source
    return _apply(source, edits) or source
