"""LangChain chat model used directly: .batch over reviews, then one .invoke with message objects."""

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

SENTIMENT_RULES = ("Classify the sentiment of a product review as positive, negative or mixed. Consider the "
                   "whole review, not single words; sarcasm counts as negative. Answer with one word only, "
                   "lower case, with no punctuation and no explanation of any kind.")


def analyse(reviews: list[str]) -> str:
    chat_model = ChatOpenAI(model="default")
    labels = chat_model.batch([SENTIMENT_RULES + "\nReview: " + r for r in reviews])
    digest = "\n".join(label.content for label in labels)
    report = chat_model.invoke([
        SystemMessage(content="You write one-paragraph summaries of sentiment counts for product managers."),
        HumanMessage(content=f"Summarise these labels:\n{digest}"),
    ])
    return report.content
