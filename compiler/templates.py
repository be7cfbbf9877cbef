"""String operations on prompt shapes: `.format`, `%`, `join`, `dedent`, strip, chat-message lists.

Each function takes symbolic `Text` values and returns the `Text` the operation would produce: literal
text stays literal (so `SYSTEM_PROMPT.format(x=1)` folds completely), and every hole filled from a
run-time value becomes a `Dyn` part that remembers where the value came from.
"""

from __future__ import annotations

import re
import string
import textwrap
from collections.abc import Callable
from dataclasses import replace

from compiler.model import SourceKind
from compiler.values import (
    MAX_TEXT_PARTS,
    Const,
    Dyn,
    Mapping,
    Opaque,
    Part,
    Seq,
    Static,
    Template,
    Text,
    Value,
    origins_of,
    text_of,
    varies_of,
)

ROLE_MARK = (-1, -1, -1, -1)  # `build` of the synthetic per-message role headers
ROLE_HEADER_TOKENS = 4  # chat templates add about this many tokens per message header
_FORMATTER = string.Formatter()
_PERCENT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)


def role_header(role: str) -> Static:
    return Static(f"<|{role}|>\n", ROLE_MARK)


def is_role_header(part: Part) -> bool:
    return isinstance(part, Static) and part.build == ROLE_MARK


def _fill(
    field: str, args: list[Value], kwargs: dict[str, Value], star: Value | None, auto: list[int]
) -> Text:
    name = field.split(".")[0].split("[")[0]
    if name == "":
        idx = auto[0]
        auto[0] += 1
        if idx < len(args):
            return text_of(args[idx], f"arg{idx}")
        return Text((Dyn(f"arg{idx}", SourceKind.UNKNOWN),))
    if name.isdigit():
        idx = int(name)
        if idx < len(args):
            return text_of(args[idx], f"arg{idx}")
        return Text((Dyn(f"arg{idx}", SourceKind.UNKNOWN),))
    if name in kwargs:
        return text_of(kwargs[name], name)
    if star is not None:
        src = star.source if isinstance(star, Opaque) else SourceKind.LOCAL
        key = f"{star.key}[{name}]" if isinstance(star, Opaque) else f"fill:{name}"
        return Text((Dyn(name, src, origins_of(star), key, varies_of(star)),))
    return Text((Dyn(name, SourceKind.UNKNOWN, key=f"field:{name}"),))


def _field_names(text: str) -> list[str]:
    try:
        return [f for _, f, _, _ in _FORMATTER.parse(text) if f]
    except ValueError:
        return []


def format_text(tmpl: Text, args: list[Value], kwargs: dict[str, Value], star: Value | None) -> Text:
    """`tmpl.format(*args, **kwargs)`; `star` is a `**mapping` whose keys are not known statically."""
    out: list[Part] = []
    auto = [0]
    fills = tuple(kwargs) + ((star.name,) if isinstance(star, Opaque) else ())
    for part in tmpl.parts:
        if isinstance(part, Dyn):
            # The holes of a run-time template are filled at places we cannot see.
            if fills:
                origins = (
                    part.origins
                    | origins_of(star)
                    | frozenset().union(*(origins_of(v) for v in kwargs.values()))
                )
                varies = (
                    part.varies
                    | varies_of(star)
                    | frozenset().union(*(varies_of(v) for v in kwargs.values()))
                )
                out.append(replace(part, fills=part.fills + fills, origins=origins, varies=varies))
            else:
                out.append(part)
            continue
        try:
            pieces = list(_FORMATTER.parse(part.text))
        except ValueError:
            out.append(part)
            continue
        for literal, field, _spec, _conv in pieces:
            if literal:
                out.append(Static(literal, part.build))
            if field is not None:
                out.extend(_fill(field, args, kwargs, star, auto).parts)
    return Text(tuple(out))


def percent_text(tmpl: Text, arg: Value) -> Text:
    """`tmpl % arg` with a tuple, a mapping or a single value."""
    if isinstance(arg, Seq):
        values = list(arg.items)
    else:
        values = [arg]
    out: list[Part] = []
    i = 0
    for part in tmpl.parts:
        if isinstance(part, Dyn):
            out.append(part)
            continue
        pos = 0
        for m in _PERCENT.finditer(part.text):
            out.append(Static(part.text[pos : m.start()], part.build))
            pos = m.end()
            if m.group("conv") == "%":
                out.append(Static("%", part.build))
                continue
            key = m.group("key")
            if key is not None:
                val = arg.get(key) if isinstance(arg, Mapping) else None
                out.extend(
                    (text_of(val, key) if val is not None else Text((Dyn(key, SourceKind.UNKNOWN),))).parts
                )
            else:
                val = values[i] if i < len(values) else None
                i += 1
                out.extend(
                    (text_of(val) if val is not None else Text((Dyn("arg", SourceKind.UNKNOWN),))).parts
                )
        out.append(Static(part.text[pos:], part.build))
    return Text(tuple(p for p in out if not (isinstance(p, Static) and not p.text)))


def join_text(sep: Text, items: Value, name: str) -> Text:
    if isinstance(items, Seq) and items.elem is None:
        out: list[Part] = []
        for i, item in enumerate(items.items):
            if i:
                out.extend(sep.parts)
            out.extend(text_of(item, name).parts)
        return Text(tuple(out))
    if isinstance(items, Seq) and items.elem is not None:
        if isinstance(items.elem, Text):
            # One representative element: its static parts repeat, its dynamic parts vary.
            return Text(items.elem.parts + sep.parts)
        e = items.elem
        src = e.source if isinstance(e, Opaque) else SourceKind.LOCAL
        if origins_of(items) and src in (SourceKind.LOCAL, SourceKind.LOOP_VARIABLE):
            src = SourceKind.CALL_OUTPUT  # joining the outputs of calls
        return Text((Dyn(name, src, origins_of(items), f"join:{name}", varies_of(items)),))
    src = items.source if isinstance(items, Opaque) else SourceKind.LOCAL
    key = f"join:{items.key}" if isinstance(items, Opaque) else f"join:{name}"
    return Text((Dyn(name, src, origins_of(items), key, varies_of(items)),))


def dedent_text(t: Text) -> Text:
    if all(isinstance(p, Static) for p in t.parts):
        whole = "".join(p.text for p in t.parts if isinstance(p, Static))
        build = t.parts[0].build if t.parts else None
        return Text((Static(textwrap.dedent(whole), build),))
    return t


def strip_text(t: Text, how: str) -> Text:
    parts = list(t.parts)
    if parts and how in ("strip", "lstrip") and isinstance(parts[0], Static):
        parts[0] = Static(parts[0].text.lstrip(), parts[0].build)
    if parts and how in ("strip", "rstrip") and isinstance(parts[-1], Static):
        parts[-1] = Static(parts[-1].text.rstrip(), parts[-1].build)
    return Text(tuple(p for p in parts if not (isinstance(p, Static) and not p.text)))


def map_static(t: Text, fn: Callable[[str], str]) -> Text:
    return Text(tuple(Static(fn(p.text), p.build) if isinstance(p, Static) else p for p in t.parts))


def _content_text(content: Value | None) -> Text:
    if content is None:
        return Text(())
    if isinstance(content, Seq) and content.elem is None:
        # OpenAI content parts: [{"type": "text", "text": ...}, ...]
        out: list[Part] = []
        for item in content.items:
            if isinstance(item, Mapping):
                txt = item.get("text")
                if txt is not None:
                    out.extend(text_of(txt, "text").parts)
            else:
                out.extend(text_of(item, "content").parts)
        return Text(tuple(out))
    return text_of(content, "content")


def message_text(msg: Value, default_role: str = "user") -> Text:
    """One chat message (dict, `(role, text)` tuple or LangChain message) as role header + content."""
    if isinstance(msg, Mapping):
        role = msg.get("role")
        role_s = (
            role.parts[0].text
            if isinstance(role, Text) and len(role.parts) == 1 and isinstance(role.parts[0], Static)
            else default_role
        )
        return Text((role_header(role_s),) + _content_text(msg.get("content")).parts)
    if isinstance(msg, Seq) and len(msg.items) == 2 and msg.elem is None:
        role_v, content = msg.items
        role_s = default_role
        if isinstance(role_v, Text) and len(role_v.parts) == 1 and isinstance(role_v.parts[0], Static):
            role_s = {"human": "user", "ai": "assistant"}.get(role_v.parts[0].text, role_v.parts[0].text)
        return Text((role_header(role_s),) + _content_text(content).parts)
    return Text((role_header(default_role),) + text_of(msg, "message").parts)


def messages_text(messages: Value | None, name: str = "messages") -> Text:
    """A chat message list flattened in order: what a prefix cache sees after the chat template."""
    if messages is None:
        return Text(())
    if isinstance(messages, Seq):
        out: list[Part] = []
        items = [*messages.items, *([messages.elem] if messages.elem is not None else [])]
        for i, item in enumerate(items):
            if len(out) > MAX_TEXT_PARTS:
                # Text cuts it here anyway: keep only the data flow of the rest, without flattening it.
                rest = items[i:]
                out.append(
                    Dyn(
                        "truncated",
                        SourceKind.LOCAL,
                        frozenset().union(*(origins_of(v) for v in rest)),
                        "truncated",
                        frozenset().union(*(varies_of(v) for v in rest)),
                    )
                )
                break
            out.extend(message_text(item).parts)
        return Text(tuple(out))
    if isinstance(messages, Text):
        return Text((role_header("user"),) + messages.parts)
    return text_of(messages, name)


def template_text(tmpl: Template, variables: Value | None) -> Text:
    """A LangChain prompt template rendered with the dict passed to `.invoke`."""
    kwargs: dict[str, Value] = {}
    star: Value | None = None
    if isinstance(variables, Mapping):
        kwargs = dict(variables.items)
    elif variables is not None and not isinstance(variables, Const):
        if isinstance(variables, Text) and len(tmpl.messages) == 1:
            # `PromptTemplate | llm` invoked with a bare string fills its single variable.
            out: list[Part] = []
            for role, t in tmpl.messages:
                fields = {f for p in t.parts if isinstance(p, Static) for f in _field_names(p.text)}
                filled = format_text(t, [variables], {f: variables for f in fields}, None)
                out.extend((role_header(role),) + filled.parts)
            return Text(tuple(out))
        star = variables
    out = []
    for role, t in tmpl.messages:
        out.extend((role_header(role),) + format_text(t, [], kwargs, star).parts)
    return Text(tuple(out))
