"""A LangGraph research agent: plan queries, search each (fanned out with `Send`), reflect, write."""
