"""Route a request by its classified intent: one classification call, then one of three specialists."""

from openai import OpenAI

client = OpenAI()
ROUTER = "Classify the request as one of: refund, technical, sales. Answer with the label only."


def chat(prompt: str) -> str:
    return client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": prompt}]
    ).choices[0].message.content


def handle(request: str) -> str:
    intent = chat(ROUTER + "\n" + request)
    if intent == "refund":
        return chat(f"You process refunds. Intent: {intent}\nRequest: {request}")
    elif intent == "technical":
        return chat(f"You are a support engineer. Intent: {intent}\nRequest: {request}")
    return chat(f"You are a sales assistant. Intent: {intent}\nRequest: {request}")
