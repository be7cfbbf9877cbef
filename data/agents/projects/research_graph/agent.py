"""The research graph: plan -> search (one run per query, `Send`) -> reflect -> search again or write."""

import operator
from typing import Annotated, TypedDict

from google import genai
from google.genai import types
from langchain_core.runnables import RunnableConfig
from langchain_google_genai import ChatGoogleGenerativeAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel

from .prompts import PLANNER, REFLECT, SEARCH_SYSTEM, WRITER, search_prompt

client = genai.Client()
MAX_ROUNDS = 2


class Plan(BaseModel):
    queries: list[str]


class Review(BaseModel):
    complete: bool
    follow_ups: list[str]


class ResearchState(TypedDict):
    topic: str
    queries: list[str]
    notes: Annotated[list[str], operator.add]
    complete: bool
    follow_ups: list[str]
    rounds: int
    report: str


def plan(state: ResearchState, config: RunnableConfig):
    llm = ChatGoogleGenerativeAI(model="gemini-2.0-flash", temperature=1.0)
    planned = llm.with_structured_output(Plan).invoke(PLANNER.format(topic=state["topic"]))
    return {"queries": planned.queries}


def to_search(state: ResearchState):
    return [Send("search", {"query": query}) for query in state["queries"]]


def search(state):
    response = client.models.generate_content(
        model="gemini-2.0-flash",
        contents=search_prompt(state["query"]),
        config=types.GenerateContentConfig(system_instruction=SEARCH_SYSTEM),
    )
    return {"notes": [response.text]}


def reflect(state: ResearchState, config: RunnableConfig):
    reviewer_llm = ChatGoogleGenerativeAI(model="gemini-2.0-flash")
    notes = "\n\n".join(state["notes"])
    review = reviewer_llm.with_structured_output(Review).invoke(REFLECT.format(topic=state["topic"], notes=notes))
    return {"complete": review.complete, "follow_ups": review.follow_ups, "rounds": state.get("rounds", 0) + 1}


def after_review(state: ResearchState):
    if state["complete"] or state["rounds"] >= MAX_ROUNDS:
        return "write"
    return [Send("search", {"query": query}) for query in state["follow_ups"]]


def write(state: ResearchState):
    llm = ChatGoogleGenerativeAI(model="gemini-2.0-flash")
    report = llm.invoke(WRITER.format(topic=state["topic"], notes="\n\n".join(state["notes"])))
    return {"report": report.content}


builder = StateGraph(ResearchState)
builder.add_node("plan", plan)
builder.add_node("search", search)
builder.add_node("reflect", reflect)
builder.add_node(write)
builder.add_edge(START, "plan")
builder.add_conditional_edges("plan", to_search, ["search"])
builder.add_edge("search", "reflect")
builder.add_conditional_edges("reflect", after_review, ["search", "write"])
builder.add_edge("write", END)
graph = builder.compile(name="research")
