"""Benchmark workload: one question asked of every contract in a batch, then the next question.

The shape of a review desk: each contract is read once per question, so what the prefix cache can reuse
between one question about a contract and the next is the whole batch of contracts: the working set is
every contract. A KV cache smaller than that evicts each contract before its turn comes again (LRU), and
the hits fall to the system prompt alone. The cache doctor's capacity scenario
(tests/integration/test_doctor_capacity.py, benchmarks/doctor_capacity.py) runs it as written.
"""

from __future__ import annotations

from openai import OpenAI

client = OpenAI()

SYSTEM = (
    "You review commercial contracts for a procurement team. Answer the question about the contract below in "
    "one sentence, quoting the clause you rely on, and say 'not stated' when the contract does not answer it."
)


def review(contracts: list[str], questions: list[str]) -> list[str]:
    answers = []
    for question in questions:
        for contract in contracts:
            response = client.chat.completions.create(
                model="tiny",
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"Contract:\n{contract}\n\nQuestion: {question}"},
                ],
                max_tokens=8,
            )
            answers.append(response.choices[0].message.content or "")
    return answers
