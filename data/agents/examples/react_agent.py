"""A ReAct loop: the message history grows with every thought, action and observation."""

import json

from openai import OpenAI

client = OpenAI()
TOOLS_PROMPT = """You are an agent that answers questions by thinking step by step and using tools.
Tools: search(query) returns web snippets; calculator(expression) evaluates arithmetic.
Reply with JSON: {"thought": ..., "action": "search"|"calculator"|"finish", "input": ...}.
Use at most one action per reply and finish as soon as you know the answer."""


def run_tool(action: str, arg: str) -> str:
    return f"result of {action}({arg})"


def react(question: str, max_steps: int = 8) -> str:
    messages = [{"role": "system", "content": TOOLS_PROMPT}, {"role": "user", "content": question}]
    for step in range(max_steps):
        reply = client.chat.completions.create(model="default", messages=messages, max_tokens=256)
        content = reply.choices[0].message.content
        decision = json.loads(content)
        if decision["action"] == "finish":
            return decision["input"]
        observation = run_tool(decision["action"], decision["input"])
        messages.append({"role": "assistant", "content": content})
        messages.append({"role": "user", "content": f"Observation: {observation}"})
    return "no answer"
