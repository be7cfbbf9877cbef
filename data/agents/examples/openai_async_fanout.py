"""Answer several questions about one report concurrently (AsyncOpenAI bound in __init__), then merge."""

import asyncio

from openai import AsyncOpenAI

INSTRUCTIONS = (
    "You are an analyst answering questions about a quarterly report. Quote figures exactly as they appear, "
    "name the section you took them from, and answer 'not stated' when the report does not say. Keep each "
    "answer to two sentences at most and do not speculate about causes or future results."
)


class ReportQA:
    def __init__(self, model: str) -> None:
        self.client = AsyncOpenAI()
        self.model = model

    async def ask(self, report: str, question: str) -> str:
        resp = await self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": INSTRUCTIONS},
                {"role": "user", "content": f"Report:\n{report}\n\nQuestion: {question}"},
            ],
            max_tokens=128,
        )
        return resp.choices[0].message.content

    async def run(self, report: str, questions: list[str]) -> str:
        answers = await asyncio.gather(*[self.ask(report, q) for q in questions])
        merged = "\n".join(answers)
        final = await self.client.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": f"Combine these answers into one briefing:\n{merged}"}],
        )
        return final.choices[0].message.content
