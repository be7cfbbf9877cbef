"""A code reviewer using the Responses API, with the client received as a parameter."""

from openai import OpenAI

REVIEW_RULES = """Review the diff like a senior Python engineer. Point out bugs, missing tests, unclear names,
and anything that breaks backwards compatibility. Be specific: cite the file and line. Do not comment on
formatting that a formatter would fix. End with a one-line verdict: approve, approve with nits, or block."""


def review(client: OpenAI, diff: str, author_notes: str) -> str:
    first = client.responses.create(model="default", instructions=REVIEW_RULES,
                                    input=f"Author notes: {author_notes}\n\nDiff:\n{diff}")
    followup = client.responses.create(
        model="default",
        instructions=REVIEW_RULES,
        input=f"Author notes: {author_notes}\n\nDiff:\n{diff}\n\nYour review:\n{first.output_text}\n\n"
              "List only the blocking issues.",
    )
    return followup.output_text
