"""The support desk's prompts: one policy every chain starts with, and a template per step."""

from langchain_core.prompts import ChatPromptTemplate

POLICY = (
    "You are the support desk of Acme Cloud. Answer only from the product documentation and the ticket. "
    "Never promise refunds, credits or dates; hand those to a human. Quote error codes exactly. If the "
    "ticket is about billing, security or data loss, say that a human will follow up within one business "
    "day. Keep a friendly, plain tone and never blame the customer."
)

TRIAGE_PROMPT = ChatPromptTemplate.from_messages([
    ("system", POLICY),
    ("human", "Classify this ticket as one of: outage, billing, how-to, bug, other.\n\nTicket:\n{ticket}"),
])

ANSWER_PROMPT = ChatPromptTemplate.from_messages([
    ("system", POLICY),
    ("human", "Category: {category}\n\nTicket:\n{ticket}\n\nWrite the reply to the customer."),
])
