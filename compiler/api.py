"""`compile_source`: agent source text in, `CompileResult` out. No I/O, never imports the agent."""

from __future__ import annotations

import ast
import hashlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compiler.adapters import ADAPTERS, Adapter
from compiler.callsites import DEFAULT_NAME_PATTERNS
from compiler.dag import build_dag
from compiler.errors import CompileError
from compiler.interpreter import Interpreter
from compiler.model import ENGINES, CompileResult, Estimates, Finding, Fix
from compiler.patterns import RULES
from compiler.patterns.base import Context
from compiler.planner import build_plan
from compiler.prefix import PrefixSimulator, Unit
from compiler.project import Project
from compiler.tokens import (
    CALL_OUTPUT_TOKENS,
    FILL_TOKENS,
    LARGE_INPUT_TOKENS,
    SMALL_VALUE_TOKENS,
    TEMPLATE_TOKENS,
    TokenCounter,
    Tokenizer,
)

if TYPE_CHECKING:
    from compiler.codemods import Edit

__all__ = ["ENGINES", "CompileOptions", "compile_source", "decode_source", "fixed_source", "parse"]


@dataclass(frozen=True)
class CompileOptions:
    engine: str = "vllm"
    name_patterns: tuple[str, ...] = DEFAULT_NAME_PATTERNS
    iterations: int = 10  # iterations assumed for each loop in the simulation
    adapters: tuple[
        type[Adapter], ...
    ] = ()  # users' own framework adapters, consulted after the built-in ones
    with_fixes: bool = True


def decode_source(data: bytes, path: str = "<bytes>") -> str:
    """Bytes as Python reads them (PEP 263 cookie or UTF-8), or a CompileError naming line:col."""
    import io
    import tokenize

    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "encoding problem" in str(exc) or "unknown encoding" in str(exc):
            raise CompileError(path, 1, 1, f"bad source encoding declaration: {exc}") from None
        encoding = "utf-8"  # undecodable bytes in the first lines: report their position below
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        start = getattr(exc, "start", 0)
        before = data[:start]
        line = before.count(b"\n") + 1
        col = start - (before.rfind(b"\n") + 1) + 1
        raise CompileError(path, line, col, f"not valid {encoding} text (byte 0x{data[start]:02x})") from None


def parse(source: str, path: str) -> ast.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escape sequences etc. are the agent's business
            return ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise CompileError(path, exc.lineno or 1, exc.offset or 1, exc.msg) from None
    except (ValueError, RecursionError, MemoryError) as exc:
        # null bytes (ValueError on some versions) and nesting too deep for CPython's parser
        msg = (
            "source nested too deeply to parse" if isinstance(exc, RecursionError | MemoryError) else str(exc)
        )
        raise CompileError(path, 1, 1, msg) from None


def compile_source(
    source: str,
    path: str = "<string>",
    token_counter: TokenCounter | None = None,
    tokenizer_name: str | None = None,
    options: CompileOptions | None = None,
    project: Project | None = None,
) -> CompileResult:
    """Compile agent source. Raises `CompileError` (file:line:col) for source Python cannot parse.

    With `project`, imports of the project's other modules are followed (their constants, templates,
    helpers and LLM wrappers); `CompileResult.modules` lists the modules read."""
    return _run(source, path, token_counter, tokenizer_name, options, project)[0]


def _run(
    source: str,
    path: str,
    token_counter: TokenCounter | None,
    tokenizer_name: str | None,
    options: CompileOptions | None,
    project: Project | None = None,
) -> tuple[CompileResult, list[Edit]]:
    opts = options or CompileOptions()
    if opts.engine not in ENGINES:
        raise ValueError(f"unknown engine {opts.engine!r}; expected one of {', '.join(ENGINES)}")
    tree = parse(source, path)
    if token_counter is None:
        tokenizer_name = "estimate (chars/4)"
    else:  # a counter may describe itself (`VllmTokenCounter.name`)
        tokenizer_name = tokenizer_name or getattr(token_counter, "name", None) or "caller-supplied tokenizer"
    tok = Tokenizer(token_counter, tokenizer_name)
    interp = Interpreter(tree, opts.name_patterns, source, project, ADAPTERS + opts.adapters)
    occurrences = interp.run()
    dag = build_dag(occurrences, tok)
    sim = PrefixSimulator(tok, opts.iterations)
    two_requests = sim.run(dag.calls, dag.order, requests=2)  # request 0 is the per-request baseline
    baseline = [r for r in two_requests if r.request == 0]
    ctx = Context(dag.calls, dag.edges, dag.order, dag.graph, tok, sim, baseline, two_requests=two_requests)
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule.detect(ctx))
    findings.sort(key=lambda f: (f.anti_pattern, f.line or 0, f.kind.value))

    fixes: list[Fix] = []
    fixed_shapes: dict[str, list[Unit]] = {}
    edits: list[Edit] = []
    if opts.with_fixes and any(f.anti_pattern for f in findings):
        from compiler.codemods import plan_fixes  # libcst is only needed when there is something to fix

        fixes, fixed_shapes, edits = plan_fixes(
            source, path, ctx, findings, dag.prompts, interp.static_names()
        )

    assumptions = [
        f"token counts of literal text: {tok.name}",
        (
            f"run-time values have assumed sizes: large inputs (document, text, ...) {LARGE_INPUT_TOKENS}, "
            f"templates {TEMPLATE_TOKENS}, call outputs {CALL_OUTPUT_TOKENS} (or max_tokens), other values "
            f"{SMALL_VALUE_TOKENS}, `.format(**x)` fills {FILL_TOKENS} tokens"
        ),
        f"each loop runs {opts.iterations} iterations; loops in main()/__main__ are separate requests",
        (
            "hit shares are for one request on a cache that starts empty, calls in topological order; the steady "
            "state is a second request with other inputs on the cache the first one left"
        ),
        "the arms of an if/elif/else or match count as equally likely (the compiler cannot know which runs)",
    ]
    plan = build_plan(ctx, findings, opts.engine, fixed_shapes or None, assumptions)
    static_total = sum(s.tokens for c in dag.calls for s in c.segments if s.kind == "static")
    dyn_total = sum(s.tokens for c in dag.calls for s in c.segments if s.kind == "dynamic")
    result = CompileResult(
        path=path,
        source_sha256=hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest(),
        calls=dag.calls,
        edges=dag.edges,
        order=dag.order,
        patterns=findings,
        plan=plan,
        fixes=fixes,
        estimates=Estimates(
            tokens_estimated=tok.estimated,
            tokenizer=tok.name,
            prompt_tokens_total=static_total + dyn_total,
            static_tokens_total=static_total,
            dynamic_tokens_assumed=dyn_total,
            assumed_iterations=opts.iterations,
        ),
        diagnostics=interp.diagnostics,
        modules=interp.modules_read,
    )
    return result, edits


def fixed_source(
    source: str,
    path: str = "<string>",
    token_counter: TokenCounter | None = None,
    options: CompileOptions | None = None,
    project: Project | None = None,
) -> tuple[str, CompileResult]:
    """The source with every automatic fix applied (unchanged when there is none), and its result."""
    from compiler.codemods import apply_edits

    result, edits = _run(source, path, token_counter, None, options, project)
    return apply_edits(source, edits), result
