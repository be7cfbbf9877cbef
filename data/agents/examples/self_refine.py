"""Self-refine: draft, then critique and revise in a loop; each revision feeds the next critique."""

from openai import OpenAI

client = OpenAI()
CRITERIA = """Judge the text against these criteria: factual accuracy, logical structure, concrete examples,
and a clear call to action. For each criterion give one sentence of critique and one concrete edit. Be
direct and specific; do not praise, do not rewrite the text yourself, and do not add new criteria."""


def complete(prompt: str) -> str:
    return client.completions.create(model="default", prompt=prompt, max_tokens=400).choices[0].text


def refine(task: str, rounds: int = 3) -> str:
    draft = complete("Write a first draft for this task:\n" + task)
    for _ in range(rounds):
        critique = complete(CRITERIA + "\n\nText:\n" + draft)
        draft = complete(f"Task: {task}\n\nDraft:\n{draft}\n\nCritique:\n{critique}\n\nRewrite the draft.")
    return draft
