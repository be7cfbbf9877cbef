"""Test case 2 of the compiler spec: one template, many small variable substitutions, in a loop.

`base_prompt` (system prompt + template) is the same on every iteration; only the company fields
filled by `.format(**vars)` change, so after the first iteration a prefix cache can serve the shared
part (LOOP_INVARIANT, DELTA_MATCHING). How much it serves depends on where the template puts its
`{fields}`: the bundled template puts them at the end.

Run: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 CHARTER_MODEL=<model> \
     python data/agents/delta_processor.py data/agents/inputs/delta_processor.jsonl
"""

from __future__ import annotations

import json
import os
import sys

from openai import OpenAI

SYSTEM_PROMPT = (
    "You are an equity research assistant. You write short, factual company profiles for an internal "
    "investor newsletter. Use a neutral tone, state figures exactly as given, never add numbers that "
    "were not provided, avoid superlatives and marketing language, and keep each profile to one "
    "paragraph of at most five sentences."
)


class DeltaProcessor:
    def __init__(self, client: OpenAI, model: str) -> None:
        self.client = client
        self.model = model

    def llm_generate(self, prompt: str) -> str:
        response = self.client.completions.create(
            model=self.model, prompt=prompt, max_tokens=128, temperature=0.0
        )
        return response.choices[0].text

    def batch_process(self, template: str, variables: list[dict[str, str]]) -> list[str]:
        results = []
        # Shared context across all iterations
        base_prompt = f"{SYSTEM_PROMPT}\n{template}"
        for i, vars in enumerate(variables):
            # Only the variable substitution changes
            full_prompt = base_prompt.format(**vars)
            result = self.llm_generate(prompt=full_prompt)
            results.append(result)
        return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print('usage: delta_processor.py INPUTS.jsonl  (one {"template": ..., "variables": [...]} per line)',
              file=sys.stderr)
        return 2
    client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                    api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
    processor = DeltaProcessor(client, os.environ.get("CHARTER_MODEL", "default"))
    with open(args[0], encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            record = json.loads(line)
            for profile in processor.batch_process(record["template"], record["variables"]):
                print(json.dumps({"profile": profile}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
