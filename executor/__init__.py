"""Plan executor and benchmark: run a compiled agent's calls against a real server, naive vs optimized.

One module per job:
- `inputs`: the JSONL inputs file (one object of the agent's input variables per run);
- `targets`: the HTTP clients for a server (vLLM's OpenAI API, Triton's `generate`), timing each call;
- `counters`: the server's own counters over exactly a run's window (`/metrics` before and after);
- `ceiling`: the best block-level prefix-cache hit share the prompts actually sent could reach;
- `workload`: the concrete calls of one run (rendered prompts, dependencies) as typed data;
- `binding`: a `CompileResult` + one input record -> that workload;
- `schedule`: naive (source order, one at a time) and optimized (warm-ups, concurrency) plans of it;
- `runner`: carries a scheduled workload out against a target and measures it;
- `bench`: the whole comparison (modes, cache resets, rounds) -> `BenchResult`;
- the result models and the `bench_run` table are the daemon's (`daemon/bench/records.py`): it stores
  and publishes them;
- `report` and `svg`: the summary table, and Markdown with dependency-free SVG charts;
- `tracing`: a drop-in OpenAI-compatible client (sync and async) that records every call of a real
  agent (prompt, call site, timings, cached tokens) and sends the plan's warm-ups before it.

Nothing here imports Textual (`charter-tui bench` runs headless), and the daemon imports nothing of this
package (`make lint`).
"""
