"""Raw HTTP against OpenAI-compatible and Triton endpoints with httpx and requests."""

import httpx
import requests

BASE = "http://127.0.0.1:8000"
RUBRIC = """Score the essay from 1 to 10 for argument, evidence and clarity, then give the total. Be strict:
a 10 means publishable without edits. Reply as JSON with the keys argument, evidence, clarity and total,
and nothing else; do not wrap the JSON in markdown and do not add comments or trailing text of any kind."""


def grade(essay: str) -> dict:
    scored = httpx.post(f"{BASE}/v1/completions",
                        json={"model": "default", "prompt": RUBRIC + "\nEssay:\n" + essay, "max_tokens": 64})
    scores = scored.json()["choices"][0]["text"]
    feedback = requests.post(
        BASE + "/v1/chat/completions",
        json={"model": "default",
              "messages": [{"role": "system", "content": RUBRIC},
                           {"role": "user", "content": f"Explain these scores to the student: {scores}"}]},
        timeout=30,
    )
    tldr = requests.post(f"{BASE}/v2/models/ensemble/generate",
                         json={"text_input": "One-line summary of: " + feedback.text, "max_tokens": 32})
    return {"scores": scores, "feedback": feedback.text, "tldr": tldr.json()["text_output"]}
