"""Benchmark workload: several analysts' agents at once, each asking six questions about its own report.

Each `answer_all` is one agent: the six questions share the system message and the report (the prefix the
plan warms), and go out together with `asyncio.gather`. Several agents run at the same time on one server,
so their requests meet in the server's waiting queue. benchmarks/priority_hints.py runs it with and without
the tracing client's priority hints.
"""

from __future__ import annotations

import asyncio

from openai import AsyncOpenAI

client = AsyncOpenAI()

SYSTEM = (
    "You are an analyst answering questions about a quarterly report. Quote figures exactly as they appear, "
    "name the section you took them from, and answer 'not stated' when the report does not say."
)

QUESTIONS = [
    "What was the revenue?",
    "Who signed the report?",
    "Which region grew fastest?",
    "What were the operating costs?",
    "Is there any pending litigation?",
    "What guidance is given for next quarter?",
]


async def ask(report: str, question: str) -> str:
    response = await client.chat.completions.create(
        model="tiny",
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Report:\n{report}\n\nQuestion: {question}"},
        ],
        max_tokens=8,
    )
    return response.choices[0].message.content or ""


async def answer_all(report: str) -> list[str]:
    return list(await asyncio.gather(*(ask(report, q) for q in QUESTIONS)))
