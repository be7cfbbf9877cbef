"""Few-shot intent classification: constant examples folded into the prompt, one call per message."""

import textwrap

from openai import OpenAI

client = OpenAI()
EXAMPLES = [
    ("I was charged twice this month", "billing"),
    ("The app crashes when I open settings", "bug"),
    ("Can you add dark mode?", "feature_request"),
    ("How do I export my data?", "how_to"),
]
HEADER = textwrap.dedent("""\
    Classify the customer message into one of: billing, bug, feature_request, how_to, other.
    Answer with the label only. Here are examples of correctly labelled messages:
    """)
SHOTS = "\n".join(f"Message: {text}\nLabel: {label}" for text, label in EXAMPLES)


def classify_all(messages: list[str]) -> list[str]:
    labels = []
    for message in messages:
        prompt = "%s\n%s\n\nMessage: %s\nLabel:" % (HEADER, SHOTS, message)  # noqa: UP031 - %-style on purpose
        out = client.completions.create(model="default", prompt=prompt, max_tokens=4)
        labels.append(out.choices[0].text.strip())
    return labels
