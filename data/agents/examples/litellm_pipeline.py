"""Translate then proof-read with litellm (sync and async)."""

import litellm
from litellm import acompletion

GLOSSARY = """Use this glossary for all product terms: 'workspace' stays 'workspace', 'board' becomes
'tableau', 'card' becomes 'fiche', 'sprint' stays 'sprint', 'backlog' becomes 'carnet de commandes'.
Keep placeholders such as {user} or %s unchanged, and keep the markdown structure exactly as it is."""


async def localise(text: str, language: str) -> str:
    draft = litellm.completion(
        model="openai/default",
        messages=[{"role": "system", "content": GLOSSARY},
                  {"role": "user", "content": f"Translate into {language}:\n{text}"}],
    )
    draft_text = draft.choices[0].message.content
    checked = await acompletion(
        model="openai/default",
        messages=[{"role": "system", "content": GLOSSARY},
                  {"role": "user", "content": f"Proof-read this {language} translation:\n{draft_text}"}],
    )
    return checked.choices[0].message.content
