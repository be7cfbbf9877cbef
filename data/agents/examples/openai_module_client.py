"""Support-ticket triage with a module-level OpenAI client: summarise, then title the summary."""

import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("OPENAI_BASE_URL"), api_key=os.environ.get("OPENAI_API_KEY", "EMPTY"))
MODEL = os.environ.get("CHARTER_MODEL", "default")

SYSTEM = """You are a support engineer at a SaaS company. You read customer tickets and write for other
engineers: name the product area, the customer's goal, what failed, and any error message verbatim.
Never guess at causes that the ticket does not state. Use plain sentences and no marketing language."""


def triage(ticket: str) -> dict:
    summary = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Summarise this ticket in three sentences:\n{ticket}"},
        ],
    ).choices[0].message.content
    title = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Write a ticket title of at most eight words for:\n{summary}"},
        ],
        max_tokens=24,
    ).choices[0].message.content
    return {"summary": summary, "title": title}
