"""An agent written against an in-house helper library: `call_llm` and `llm_*` functions."""

from acme_llm import call_llm, llm_summarize  # in-house wrappers; the compiler matches them by name

STYLE_GUIDE = """Write for busy executives: lead with the conclusion, use short sentences, no jargon, no
passive voice, and include exactly one number that matters. Keep it under 120 words. Never use bullet
points or headings, and never address the reader directly or mention that you are an AI model."""


def brief(article: str, audience: str) -> str:
    summary = llm_summarize(article)
    draft = call_llm(prompt=STYLE_GUIDE + "\nAudience: " + audience + "\nSummary:\n" + summary)
    return draft
