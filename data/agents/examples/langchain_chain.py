"""A LangChain LCEL chain: prompt template | chat model | parser, and a second chain fed by the first."""

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

llm = ChatOpenAI(model="default", temperature=0)

outline_prompt = ChatPromptTemplate.from_messages([
    ("system", ("You are a technical writer. You produce outlines for developer documentation: numbered "
               "sections, one line each, in the order a new user needs them. No prose, no code samples, "
               "and never more than eight sections. Prefer task-oriented titles over feature names.")),
    ("human", "Outline a tutorial about {topic} for {audience}."),
])
draft_prompt = ChatPromptTemplate.from_messages([
    ("system", "You are a technical writer. Expand the outline into a tutorial draft in markdown."),
    ("human", "Outline:\n{outline}\n\nWrite the draft for {audience}."),
])

outline_chain = outline_prompt | llm | StrOutputParser()
draft_chain = draft_prompt | llm | StrOutputParser()


def write_tutorial(topic: str, audience: str) -> str:
    outline = outline_chain.invoke({"topic": topic, "audience": audience})
    return draft_chain.invoke({"outline": outline, "audience": audience})
