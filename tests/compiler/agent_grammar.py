"""A grammar of agent-like Python: statements around LLM calls, for fuzzing the compiler.

`program(pick)` builds one module from a chooser `pick(n) -> int in [0, n)`, so the same grammar
drives hypothesis (`pick = lambda n: draw(st.integers(0, n - 1))`, which shrinks) and the by-hand
fuzzer `benchmarks/fuzz_compiler.py` (`pick = random.Random(seed).randrange`, which is fast). Every
program it makes is valid Python; `noise(pick)` makes text that mostly is not (random bytes, unicode,
mangled programs).
"""

from __future__ import annotations

from collections.abc import Callable

Pick = Callable[[int], int]

NAMES = ["x", "y", "q", "doc", "history", "r", "items", "S", "msgs"]
CALLS = [
    "client.chat.completions.create(model='m', messages=[{{'role': 'system', 'content': S}}, {{'role': 'user', 'content': {a}}}])",
    "client.completions.create(model='m', prompt={a}, max_tokens=16, n=2)",
    "litellm.completion(model='m', messages=[{{'role': 'user', 'content': {a}}}])",
    "await client.chat.completions.create(model='m', messages={a})",
    "call_llm(prompt={a})",
    "llm_summarise({a}, max_tokens=8)",
    "chain.invoke({{'q': {a}}})",
    "chain.batch([{a}, {a}])",
    "httpx.post('http://h/v1/completions', json={{'prompt': {a}}})",
    "triton.infer('m', inputs=[{a}])",
    "generate({a}, temperature=0.1)",
]
EXPRS = [
    "{a}",
    "'lit'",
    "f'{{{n}}} and {{S}}'",
    "{a} + {b}",
    "{a} + 'tail'",
    "S + {a}",
    "'%s: %s' % ({a}, {b})",
    "'T {{0}} {{k}}'.format({a}, k={b})",
    "'\\n'.join({a})",
    "[{a}, {b}]",
    "{{'role': 'user', 'content': {a}}}",
    "{a}.strip()",
    "{a}[0]",
    "{a} if {b} else S",
    "[f({a}) for i in {b}]",
    "{{k: v for k, v in {a}}}",
    "textwrap.dedent({a})",
    "time.time()",
    "uuid.uuid4()",
    "str({a})",
    "({a} or '')",
    "not {a}",
    "{a} == {b}",
    "-{a}",
    "{a} * 2",
    "({n} := {a})",
    "lambda z: z + {a}",
    "[1, 2, 3]",
    "{a}.upper()",
    "len({a})",
]
HEADER = [
    "import time, uuid, textwrap, httpx, litellm",
    "from openai import OpenAI, AsyncOpenAI",
    "client = OpenAI()",
    "S = 'You are a careful assistant. ' * 3",
    "x, y, q, doc, history, r, items, msgs = 'a', {}, 'q', 'd', '', None, ['i', 'j'], []",
]


def _name(pick: Pick) -> str:
    return NAMES[pick(len(NAMES))]


def expr(pick: Pick, depth: int = 0, in_async: bool = False) -> str:
    """An expression; nested up to a few levels, LLM calls among the leaves."""
    if depth < 3 and pick(4) == 0:
        call = CALLS[pick(len(CALLS))]
        if call.startswith("await") and not in_async:
            call = call.removeprefix("await ")
        return call.format(a=f"({expr(pick, depth + 1, in_async)})")
    form = EXPRS[pick(len(EXPRS))]
    n = _name(pick)  # where only a name fits: f-string fields (no quotes inside in 3.11), `:=` targets
    if depth >= 3:
        return form.format(a=_name(pick), b=_name(pick), n=n)
    a = f"({expr(pick, depth + 1, in_async)})" if pick(3) == 0 else _name(pick)
    return form.format(a=a, b=_name(pick), n=n)


def program(pick: Pick, max_statements: int = 40, max_depth: int = 8) -> str:
    """A valid module: functions, classes, loops (deeply nested at times), branches, try, with, match."""
    lines = list(HEADER)
    budget = [1 + pick(max_statements)]

    def block(indent: int, in_function: bool, in_async: bool, in_loop: bool, depth: int) -> None:
        pad = "    " * indent
        lines.append(pad + "pass")  # never an empty block, whatever the budget says
        for _ in range(1 + pick(4)):
            if budget[0] <= 0:
                return
            budget[0] -= 1
            kinds = ["assign", "augassign", "expr", "append"]
            if in_function:
                kinds.append("return")
            if in_loop:
                kinds += ["break", "continue"]
            if depth < max_depth:
                kinds += [
                    "if",
                    "elif",
                    "for",
                    "while",
                    "def",
                    "asyncdef",
                    "class",
                    "try",
                    "with",
                    "match",
                    "forconst",
                ]
            kind = kinds[pick(len(kinds))]
            e = expr(pick, 0, in_async)
            if kind == "assign":
                lines.append(f"{pad}{_name(pick)} = {e}")
            elif kind == "augassign":
                lines.append(f"{pad}{_name(pick)} += {e}")
            elif kind == "expr":
                lines.append(f"{pad}{e}")
            elif kind == "append":
                lines.append(f"{pad}msgs.append({{'role': 'user', 'content': {e}}})")
            elif kind == "return":
                lines.append(f"{pad}return {e}")
            elif kind in ("break", "continue"):
                lines.append(f"{pad}{kind}")
            elif kind == "elif":
                lines.append(f"{pad}if {e}:")
                block(indent + 1, in_function, in_async, in_loop, depth + 1)
                for _ in range(pick(6)):
                    lines.append(f"{pad}elif {_name(pick)} == {pick(100)}:")
                    block(indent + 1, in_function, in_async, in_loop, depth + 1)
                lines.append(f"{pad}else:")
                block(indent + 1, in_function, in_async, in_loop, depth + 1)
            elif kind == "class":
                lines.extend(
                    [f"{pad}class A{pick(3)}:", f"{pad}    B = S + 'x'", f"{pad}    def m(self, d):"]
                )
                block(indent + 2, True, False, False, depth + 1)
            elif kind == "match":
                lines.extend([f"{pad}match {e}:", f"{pad}    case 1:"])
                block(indent + 2, in_function, in_async, in_loop, depth + 1)
                lines.extend([f"{pad}    case _:", f"{pad}        pass"])
            else:
                header = {
                    "if": f"if {e}:",
                    "for": f"for {_name(pick)} in {e}:",
                    "while": f"while {e}:",
                    "forconst": f"for {_name(pick)} in ['a', 'b', 'c']:",
                    "def": f"def f{pick(3)}(x, y=S, *a, **k):",
                    "asyncdef": f"async def g{pick(3)}(x):",
                    "try": "try:",
                    "with": f"with {e} as w:",
                }[kind]
                lines.append(pad + header)
                fn = in_function or kind in ("def", "asyncdef")
                is_async = (in_async or kind == "asyncdef") and kind != "def"
                loop = (in_loop or kind in ("for", "while", "forconst")) and kind not in ("def", "asyncdef")
                block(indent + 1, fn, is_async, loop, depth + 1)
                if kind == "try":
                    lines.extend([f"{pad}except Exception as e:", f"{pad}    x = S"])
                elif kind == "if" and pick(2):
                    lines.append(f"{pad}else:")
                    block(indent + 1, in_function, in_async, in_loop, depth + 1)

    block(0, False, False, False, 0)
    return "\n".join(lines) + "\n"


def noise(pick: Pick) -> bytes:
    """Mostly not Python: random bytes, random unicode, or a valid program with bytes flipped or cut."""
    kind = pick(4)
    n = pick(400)
    if kind == 0:
        return bytes(pick(256) for _ in range(n))
    if kind == 1:
        pool = [
            0x0,
            0x9,
            0xA,
            0xD,
            0x20,
            0x22,
            0x27,
            0x28,
            0x29,
            0x3A,
            0x7B,
            0x7D,
            0xA0,
            0x2028,
            0x200B,
            0xFEFF,
            0xD800,
            0x1F600,
            0x10FFFF,
            0x0663,
            0x4E2D,
        ]
        chars = [chr(pool[pick(len(pool))] if pick(2) else 0x20 + pick(0x5F)) for _ in range(n)]
        return "".join(chars).encode("utf-8", "surrogatepass")
    data = bytearray(program(pick, max_statements=10).encode())
    if kind == 2:
        for _ in range(1 + pick(5)):
            data[pick(len(data))] = pick(256)
        return bytes(data)
    return bytes(data[: pick(len(data))])
