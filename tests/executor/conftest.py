"""Inputs for the executor's real-server tests: small records shaped like the bundled agents' inputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC_AGENT = REPO / "data" / "agents" / "document_processor.py"
DELTA_AGENT = REPO / "data" / "agents" / "delta_processor.py"

_WORDS = (
    "supplier invoice shipment warehouse delivery audit compliance board contract payment term "
    "penalty liability notice renewal pricing volume region customer service level"
).split()


def document(seed: int, words: int = 220) -> str:
    rng = random.Random(seed)
    return f"Document {seed}. " + " ".join(rng.choice(_WORDS) for _ in range(words)) + "."


def write_jsonl(path: Path, rows: list[object], comment: str | None = None) -> Path:
    lines = [f"# {comment}"] if comment else []
    lines += [json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def doc_inputs(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "docs.jsonl", [{"document": document(i)} for i in range(2)])


@pytest.fixture
def delta_inputs(tmp_path: Path) -> Path:
    template = (
        "Write a two-sentence profile of the company for an investor memo, neutral tone, figures "
        "exactly as given, compared with the sector median.\nCompany: {company}\nRevenue: {revenue}\n"
        "Employees: {employees}\nProfile:"
    )
    rows = [
        {
            "template": template,
            "variables": [
                {"company": f"Co{r}{i}", "revenue": f"${i + 3}M", "employees": str(10 * i + 12)}
                for i in range(6)
            ],
        }
        for r in range(2)
    ]
    return write_jsonl(tmp_path / "delta.jsonl", rows)
