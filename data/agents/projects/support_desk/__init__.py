"""A support-desk agent as a small project: prompts in their own module, LangChain LCEL chains in agent.py."""
