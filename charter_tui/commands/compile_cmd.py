"""`charter-tui compile` and `charter-tui watch`: agent files -> DAG of LLM calls -> patterns -> cache plan.

Both read agent source as text and never import or run it. `compile --fix` is the only path that
writes: it keeps a backup next to the file first and replaces the file atomically.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules at import time: the CLI imports every command to build its parser, and the
# compiler (networkx, libcst) is loaded when a command actually runs.
from compiler.callsites import DEFAULT_NAME_PATTERNS
from compiler.export import FORMATS
from compiler.model import (
    ANTI_PATTERNS,
    ENGINES,
    MAX_SOURCE_BYTES,
    SCHEMA_VERSION,
    CompileResult,
    PatternKind,
)
from daemon.compile_worker import DEFAULT_COMPILE_TIMEOUT_S, CompileLimits
from daemon.atomic_file import atomic_write
from daemon.errors import UserError

if TYPE_CHECKING:
    from compiler.api import CompileOptions
    from daemon.watcher import AgentWatcher
    from compiler.project import Project
    from daemon.project_files import ProjectFiles
    from executor.inputs import InputRecord

_EPILOG = """\
what it finds: every LLM call (OpenAI/AsyncOpenAI SDK, litellm, LangChain .invoke/.batch,
tritonclient infer, httpx/requests POSTs to /v1/completions, /v1/chat/completions and
/v2/models/<m>/generate, functions named like llm_*, call_llm, generate, complete, chat, and
callables received as parameters and called with max_tokens=/n=/temperature=), how each prompt is
built, the data flow between the calls, the patterns SHARED_PREFIX, SEQUENTIAL_CHAIN, MAP_REDUCE,
BRANCHING, LOOP_INVARIANT, GROWING_HISTORY, DELTA_MATCHING and the anti-patterns DYNAMIC_PREFIX and MISPLACED_SHARED_CONTEXT,
and a cache plan: hit share per engine block size, warm-ups, call order and engine settings.

Token counts are estimates (about 4 characters per token) unless --target names a vLLM server whose
/tokenize endpoint then counts the literal text; sizes of run-time values are always assumptions.

exit status: 0 ok, 1 when --fail-on matched a finding, 2 for input that cannot be compiled (the
message names file:line:col) or other usage errors.
examples:
  charter-tui compile data/agents/document_processor.py --diff
  charter-tui compile agents/ --format json > plan.json
  charter-tui compile agent.py --engine trtllm --target http://127.0.0.1:8000
  charter-tui compile agent.py --inputs requests.jsonl --requests 100 --block-size 32
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compile",
        help="compile agent files into a DAG of LLM calls, memoization patterns and a cache plan",
        description="Compile Python agent files (read, never run) into a DAG of their LLM calls, the "
        "memoization patterns it contains, and a prefix-cache plan for vLLM, TRT-LLM or SGLang.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="agent .py files or directories of them"
    )
    p.add_argument(
        "--schema",
        action="store_true",
        help=f"print the JSON Schema of --format json output (schema version {SCHEMA_VERSION}) and exit",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="output: readable text (default), json (versioned schema), dot (Graphviz), mermaid",
    )
    _common(p)
    p.add_argument(
        "--diff", action="store_true", help="show the restructuring of each anti-pattern as a unified diff"
    )
    p.add_argument(
        "--fail-on",
        metavar="KINDS",
        default=None,
        help="exit 1 when a finding of these kinds is present (comma-separated pattern names, or "
        "'anti' for DYNAMIC_PREFIX and MISPLACED_SHARED_CONTEXT); for CI",
    )
    p.add_argument(
        "--single-file",
        action="store_true",
        help="compile each file alone; by default imports of the project's own modules (prompts.py, "
        "helpers) are followed, the project being the nearest directory with pyproject.toml, setup.py, "
        "setup.cfg or .git above the file",
    )
    p.add_argument(
        "--inputs",
        type=Path,
        metavar="FILE",
        help="a sample of real inputs (JSONL, one record per request, as `bench` takes): also estimate "
        "the hit share for that traffic — every request's prompts built from its record, the cache "
        "carried from one request to the next — beside the one-request figure",
    )
    p.add_argument(
        "--requests",
        type=int,
        metavar="N",
        help="with --inputs: this many requests, the records taken in turn (default: one per record)",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=16,
        metavar="N",
        help="with --inputs: the engine's KV block size in tokens (default 16, vLLM's)",
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="apply the restructurings to the files (writes FILE.bak first; prompt order changes "
        "what the model sees, so re-run your evaluations)",
    )
    p.set_defaults(func=run_compile)

    w = sub.add_parser(
        "watch",
        help="recompile agent files on every save and print what changed (headless)",
        description="Watch agent files (or directories) and recompile on save: one line per change with "
        "the calls, patterns and hit share, and which patterns appeared or disappeared. A file "
        "with a syntax error keeps its last good result and the error names file:line:col. "
        "Stop with Ctrl-C.",
    )
    w.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="agent .py files or directories of them"
    )
    _common(w)
    w.add_argument(
        "--debounce-ms",
        type=int,
        default=200,
        metavar="MS",
        help="wait this long for a burst of saves to settle (default 200)",
    )
    w.add_argument(
        "--compile-timeout",
        type=_seconds,
        default=DEFAULT_COMPILE_TIMEOUT_S,
        metavar="S",
        help="give up on a file whose compile takes longer (it keeps its last good result and "
        f"is reported too complex; default {DEFAULT_COMPILE_TIMEOUT_S:g})",
    )
    w.add_argument("--exit-after", type=int, default=None, metavar="N", help=argparse.SUPPRESS)
    w.set_defaults(func=run_watch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine", choices=ENGINES, default="vllm", help="engine the plan's settings target (default vllm)"
    )
    p.add_argument(
        "--target",
        metavar="URL",
        help="a vLLM server (e.g. http://127.0.0.1:8000) whose /tokenize counts the tokens",
    )
    p.add_argument("--model", help="model name for --target (default: the first of GET /v1/models)")
    p.add_argument(
        "--name-pattern",
        action="append",
        default=[],
        metavar="GLOB",
        help="also treat calls to functions matching GLOB as LLM calls (repeatable); defaults: "
        + ", ".join(DEFAULT_NAME_PATTERNS),
    )
    p.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="MODULE:CLASS",
        help="also use this framework adapter (a compiler.adapters.base.Adapter subclass; repeatable); "
        "adapters installed under the charter_tui.adapters entry point are always used",
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=10,
        metavar="N",
        help="iterations assumed per loop in the hit-share simulation (default 10)",
    )
    p.add_argument(
        "--max-bytes",
        type=int,
        default=MAX_SOURCE_BYTES,
        metavar="N",
        help=f"refuse files larger than this (default {MAX_SOURCE_BYTES})",
    )


MAX_COMPILE_TIMEOUT_S = 3600.0


def _seconds(text: str) -> float:
    """`--compile-timeout`: a finite budget, so that a pathological file cannot hold a core for good."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_COMPILE_TIMEOUT_S:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text!r}: must be a number of seconds in (0, {MAX_COMPILE_TIMEOUT_S:g}]"
        )
    return value


def _options(args: argparse.Namespace) -> CompileOptions:
    from compiler.api import CompileOptions

    from daemon.adapters import AdapterError, load_adapters

    if args.iterations < 1:
        raise UserError("--iterations must be at least 1")
    try:
        adapters = load_adapters(args.adapter)
    except AdapterError as exc:
        raise UserError(str(exc)) from None
    return CompileOptions(
        engine=args.engine,
        name_patterns=DEFAULT_NAME_PATTERNS + tuple(args.name_pattern),
        iterations=args.iterations,
        adapters=adapters,
    )


def _counter(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    if not args.target:
        return None
    from daemon.tokenize import VllmTokenCounter

    return VllmTokenCounter(args.target, args.model)


def _files(paths: list[Path]) -> list[Path]:
    for p in paths:
        if not p.exists():
            raise UserError(f"{p}: no such file or directory")
    from daemon.watcher import expand

    files = expand(paths)
    if not files:
        raise UserError("no .py files found in " + ", ".join(str(p) for p in paths))
    return files


def run_compile(args: argparse.Namespace) -> int:
    if args.schema:
        from compiler.export import json_schema

        sys.stdout.write(json_schema() + "\n")
        return 0
    if not args.paths:
        raise UserError("compile needs at least one PATH (or --schema)")
    from compiler.errors import CompileError
    from compiler.export import render
    from daemon.watcher import compile_file

    options = _options(args)
    fail_on = _fail_on(args.fail_on)
    files = _files(args.paths)
    records: list[InputRecord] = []
    if args.inputs is not None:
        if len(files) != 1 or args.format != "text" or args.fix:
            raise UserError(
                "--inputs estimates one agent's traffic: give exactly one agent file, text format"
            )
        if args.block_size < 1 or (args.requests is not None and args.requests < 1):
            raise UserError("--block-size and --requests must be at least 1")
        from executor.inputs import load_inputs

        records = load_inputs(args.inputs)  # before compiling: a bad file is one line naming it
        if args.requests is not None:
            records = [records[i % len(records)] for i in range(args.requests)]
    counter = _counter(args)
    projects = Projects(enabled=not args.single_file)
    results: list[CompileResult] = []
    failed = False
    for path in files:
        try:
            project = projects.project_for(path)
            if args.fix:
                result = _fix_file(path, options, counter, args.max_bytes, project)
            else:
                result = compile_file(path, options, counter, args.max_bytes, project)
        except CompileError as exc:
            if len(files) == 1:
                raise UserError(str(exc)) from None
            print(f"charter-tui: {exc}", file=sys.stderr)
            failed = True
            continue
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
        results.append(result)
        if args.format != "json":
            sys.stdout.write(render(result, args.format, args.engine, show_diff=args.diff))
        if args.inputs is not None and args.format == "text":
            sys.stdout.write(_traffic_section(args, result, records))
    if args.format == "json":
        payload = [json.loads(r.model_dump_json()) for r in results]
        sys.stdout.write(json.dumps(payload[0] if len(files) == 1 else payload, indent=2) + "\n")
    if failed:
        return 2
    hits = [
        f"{r.path}:{f.line or 1}: {f.kind.value}"
        for r in results
        for f in r.patterns
        if f.kind.value in fail_on
    ]
    for hit in hits:
        print(f"charter-tui: --fail-on: {hit}", file=sys.stderr)
    return 1 if hits else 0


def _traffic_section(args: argparse.Namespace, result: CompileResult, records: list[InputRecord]) -> str:
    """The estimate for the traffic of `--inputs` (`executor.estimate`), as a section of the text output."""
    from executor.errors import BindingError
    from executor.estimate import estimate_traffic
    from executor.targets import connect_target

    async def run():  # type: ignore[no-untyped-def]
        via = await connect_target(args.target, model=args.model) if args.target else None
        try:
            return await estimate_traffic(result, records, block_size=args.block_size, via=via)
        finally:
            if via is not None:
                await via.aclose()

    try:
        e = asyncio.run(run())
    except BindingError as exc:
        raise UserError(f"{args.inputs}: {exc}") from None
    lines = [
        "",
        f"traffic: {e.requests} request(s) from {args.inputs}, block size {e.block_size}, cache carried "
        "between requests",
        f"  estimate {e.estimate:.1%} of {e.prompt_tokens} prompt tokens (first request alone "
        f"{e.first_request_share:.1%}); ceiling {e.ceiling:.1%} at token level",
        *(f"  modelled: {a}" for a in e.assumptions),
        "",
    ]
    return "\n".join(lines)


def _fail_on(spec: str | None) -> set[str]:
    if not spec:
        return set()
    kinds = {k.value for k in PatternKind}
    out: set[str] = set()
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        if item.lower() == "anti":
            out |= {k.value for k in ANTI_PATTERNS}
        elif item.upper() in kinds:
            out.add(item.upper())
        else:
            raise UserError(
                f"--fail-on: unknown pattern {item!r}; expected 'anti' or some of {', '.join(sorted(kinds))}"
            )
    return out


class Projects:
    """The project of each file compiled, read once per project root; files left out are said once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._by_root: dict[Path, ProjectFiles] = {}

    def project_for(self, path: Path) -> Project | None:
        if not self.enabled:
            return None
        from daemon.project_files import ProjectFiles, project_root

        path = path.resolve()
        root = project_root(path)
        known = root in self._by_root
        files = self._by_root.setdefault(root, ProjectFiles(root))
        project = files.project_for(path)
        if not known:
            for problem in files.problems:
                print(f"charter-tui: warning: {problem}", file=sys.stderr)
        return project


def _fix_file(
    path: Path, options: CompileOptions, counter, max_bytes: int, project: Project | None
) -> CompileResult:  # type: ignore[no-untyped-def]
    from compiler.api import decode_source, fixed_source
    from daemon.watcher import compile_file

    compile_file(path, options, counter, max_bytes, project)  # size and syntax checks with the usual messages
    data = path.read_bytes()
    source = decode_source(data, str(path))
    new, result = fixed_source(source, str(path), counter, options, project)
    if new == source:
        print(f"{path}: nothing to restructure automatically", file=sys.stderr)
        return result
    backup = _backup_path(path)
    atomic_write(backup, data)
    atomic_write(path, new.encode("utf-8"))
    names = ", ".join(f"{f.pattern.value}[{','.join(f.calls)}]" for f in result.fixes if f.diff)
    print(f"{path}: restructured ({names}); original saved as {backup}", file=sys.stderr)
    print(f"warning: {result.fixes[0].warning}", file=sys.stderr)
    return result


def _backup_path(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():  # never overwrite an earlier backup
        candidate = path.with_name(f"{path.name}.bak.{n}")
        n += 1
    return candidate


def run_watch(args: argparse.Namespace) -> int:
    options = _options(args)
    _files(args.paths)
    counter = _counter(args)
    from daemon.watcher import AgentWatcher

    limits = CompileLimits(timeout_s=args.compile_timeout)
    watcher = AgentWatcher(list(args.paths), options, counter, args.debounce_ms, limits=limits)
    return asyncio.run(_watch(watcher, args.exit_after))


async def _watch(watcher: AgentWatcher, exit_after: int | None) -> int:
    seen = 0
    async for event in watcher.events():
        print(event.summary(), flush=True)
        seen += 1
        if exit_after is not None and seen >= exit_after:
            break
    return 0
