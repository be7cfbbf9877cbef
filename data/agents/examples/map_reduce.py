"""Map-reduce summarisation: summarise each chunk, then summarise the summaries."""

from openai import OpenAI

client = OpenAI()
MAP_INSTRUCTIONS = """Summarise the following part of a long meeting transcript. Keep decisions, owners and
dates; drop small talk. Write at most five bullet points, each starting with the speaker's name, and keep
the original wording of any decision. Do not invent owners or dates that the transcript does not state."""


def summarise_chunk(chunk: str) -> str:
    resp = client.completions.create(model="default", prompt=MAP_INSTRUCTIONS + "\n\n" + chunk, max_tokens=200)
    return resp.choices[0].text


def summarise(transcript: str) -> str:
    chunks = [transcript[i:i + 4000] for i in range(0, len(transcript), 4000)]
    partials = [summarise_chunk(c) for c in chunks]
    joined = "\n".join(partials)
    final = client.completions.create(model="default",
                                      prompt="Merge these partial summaries into one list:\n" + joined)
    return final.choices[0].text
