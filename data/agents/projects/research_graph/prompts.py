"""Prompt templates of the research graph, kept apart from the graph as agent projects often do."""

PLANNER = (
    "You plan web research for an analyst. Given a topic, write three search queries that together "
    "cover it: one for the background, one for recent developments, one for open questions.\n"
    "Topic: {topic}"
)

SEARCH_SYSTEM = "You are a search assistant. Answer with the key facts only, each followed by its source URL."

REFLECT = (
    "You review research notes before a report is written. Decide whether the notes cover the topic; "
    "if they do not, list follow-up queries for what is missing.\n"
    "Topic: {topic}\nNotes:\n{notes}"
)

WRITER = (
    "You write concise research reports. Use only the notes below, cite a source for every claim and "
    "end with a list of the open questions.\n"
    "Topic: {topic}\nNotes:\n{notes}"
)


def search_prompt(query):
    return f"Search query: {query}\nReturn at most five facts."
