"""Test case 1 of the compiler spec: extraction -> validation -> classification of one document.

Three LLM calls in a chain. All three start with the same SYSTEM_PROMPT; the document is needed by
all three but calls 2 and 3 put it *after* their own instructions and the previous call's output, so
a prefix cache can reuse only the system prompt (MISPLACED_SHARED_CONTEXT). This layout is the
spec's, kept on purpose: `charter-tui compile data/agents/document_processor.py --diff` shows the fix.

Run: OPENAI_BASE_URL=http://127.0.0.1:8000/v1 CHARTER_MODEL=<model> \
     python data/agents/document_processor.py data/agents/inputs/document_processor.jsonl
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass

from openai import OpenAI

SYSTEM_PROMPT = (
    "You are a precise document analyst working for a compliance team. You read business documents "
    "such as contracts, invoices, letters and reports, and you answer strictly from their text. "
    "Never invent facts, names, dates or amounts that are not written in the document. When something "
    "is ambiguous, say so briefly instead of guessing. Answer in plain text, one item per line, "
    "without preamble, and keep every answer as short as the task allows."
)


@dataclass
class ProcessingResult:
    entities: str
    validated: str
    classification: str


class DocumentProcessor:
    def __init__(self, client: OpenAI, model: str, max_tokens: int = 256) -> None:
        self.client = client
        self.model = model
        self.max_tokens = max_tokens

    def _complete(self, prompt: str) -> str:
        response = self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=self.max_tokens,
            temperature=0.0,
        )
        return response.choices[0].message.content or ""

    def llm_extract_entities(self, prompt: str) -> str:
        return self._complete(prompt)

    def llm_validate_entities(self, prompt: str) -> str:
        return self._complete(prompt)

    def llm_classify_document(self, prompt: str) -> str:
        return self._complete(prompt)

    def process(self, document: str) -> ProcessingResult:
        # Stage 1: entity extraction
        entities = self.llm_extract_entities(
            prompt=f"{SYSTEM_PROMPT}\nExtract entities from:\n{document}"
        )
        # Stage 2: validation, depends on the extraction
        validated = self.llm_validate_entities(
            prompt=f"{SYSTEM_PROMPT}\nValidate these entities:\n{entities}\nAgainst document:\n{document}"
        )
        # Stage 3: classification, depends on the validation
        classification = self.llm_classify_document(
            prompt=f"{SYSTEM_PROMPT}\nClassify document:\n{document}\nWith validated entities:\n{validated}"
        )
        return ProcessingResult(entities, validated, classification)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: document_processor.py INPUTS.jsonl  (one {\"document\": ...} per line)", file=sys.stderr)
        return 2
    client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"),
                    api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
    processor = DocumentProcessor(client, os.environ.get("CHARTER_MODEL", "default"))
    with open(args[0], encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            record = json.loads(line)
            result = processor.process(record["document"])
            print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
