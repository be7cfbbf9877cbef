"""Triage a ticket, then answer it: two chains sharing the policy prompt imported from prompts.py."""

from langchain_core.output_parsers import StrOutputParser
from langchain_openai import ChatOpenAI

from .prompts import ANSWER_PROMPT, TRIAGE_PROMPT

llm = ChatOpenAI(model="default", temperature=0)

triage_chain = TRIAGE_PROMPT | llm | StrOutputParser()
answer_chain = ANSWER_PROMPT | llm | StrOutputParser()


def handle(ticket: str) -> str:
    category = triage_chain.invoke({"ticket": ticket})
    return answer_chain.invoke({"ticket": ticket, "category": category})
