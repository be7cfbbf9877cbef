"""Older code: the legacy completions API, a prompt built with % formatting and textwrap.dedent."""

import textwrap

import openai

TEMPLATE = textwrap.dedent("""\
    You are a release-notes writer. Turn the merged pull requests below into release notes grouped under
    Features, Fixes and Internal. One line per change, imperative mood, no PR numbers, no author names.
    Version: %s
    Pull requests:
    %s
    """)


def release_notes(version: str, pull_requests: str) -> str:
    return openai.completions.create(model="default", prompt=TEMPLATE % (version, pull_requests)).choices[0].text
