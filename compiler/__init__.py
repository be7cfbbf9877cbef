"""The memoization compiler: Python agent source -> DAG of LLM calls -> patterns -> cache plan.

Pure analysis: source text in, a `compiler.model.CompileResult` out. The compiler never imports or
runs the agent and does no I/O; token counts come from an optional `str -> int` callable the caller
injects (the CLI builds one from vLLM's `POST /tokenize`), otherwise they are estimated and every
figure says so (`estimates.tokens_estimated`).

    from compiler.api import compile_source
    result = compile_source(open("agent.py").read(), "agent.py")
    result.model_dump_json()          # the versioned schema (`compiler.model.SCHEMA_VERSION`)

One module per concern:

- `interpreter/` data flow: an abstract interpreter over `ast` that follows prompts through
                 constants, f-strings, `+`/`+=`, `.format`, `%`, `join`, `dedent`, message lists,
                 loops, branches and inlined local functions, and records every LLM call it reaches
                 (one module per part; `interpreter/sdk.py` is what it knows of client SDKs);
- `callsites`    which calls are LLM calls and in which style (OpenAI, litellm, LangChain,
                 tritonclient, HTTP, named helpers, callables received as parameters);
- `templates`    string operations on prompt shapes (static and dynamic segments);
- `values`       the symbolic values those operate on;
- `dag`          occurrences -> call sites, edges labelled by variables, topological order (networkx);
- `refs`         the expressions a replay evaluates (segment names, loop headers) as `Ref` trees;
- `prefix`       block-granular prefix-cache simulation (the best reachable hit share);
- `patterns/`    one detector per pattern, each with positive and negative example programs;
- `planner`      cache plan: hit share per engine block size, warm-ups, schedule, engine settings,
                 TRT-LLM retention configs;
- `codemods`     libcst rewrites for the anti-patterns, as unified diffs (applied only by `--fix`);
- `export`       JSON / DOT / Mermaid / text;
- `tokens`       token estimates and the assumed sizes of run-time values;
- `api`          `compile_source`, `decode_source`, `fixed_source`.
"""
