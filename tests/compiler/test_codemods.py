"""Codemods on their own: `+` chains, f-strings, escapes, and what they refuse to touch."""

from __future__ import annotations

import ast

from compiler.api import compile_source, fixed_source

PLUS_CHAIN = """
import litellm

RULES = "You are a careful contract reviewer. Quote clauses exactly and never give legal advice."


def review(contract):
    parties = litellm.completion(model="m", messages=[
        {"role": "user", "content": RULES + "\\nList the parties in:\\n" + contract}])
    risks = litellm.completion(model="m", messages=[
        {"role": "user", "content": RULES + "\\nList the risks for " + str(parties) + " in:\\n" + contract}])
    return risks
"""


def test_plus_chain_moves_the_shared_input_after_the_common_head():
    new, result = fixed_source(PLUS_CHAIN, "review.py")
    [fix] = result.fixes
    assert fix.pattern.value == "MISPLACED_SHARED_CONTEXT" and fix.diff
    assert (
        '"content": RULES + "Contract:\\n" + contract + "\\n\\n" + "\\nList the parties in the contract above.\\n"}'
        in new
    )
    assert (
        '"content": RULES + "Contract:\\n" + contract + "\\n\\n" + "\\nList the risks for " + str(parties)'
        ' + " in the contract above.\\n"}' in new
    )
    ast.parse(new)
    after = compile_source(new, "review.py")
    assert "MISPLACED_SHARED_CONTEXT" not in after.pattern_kinds()
    assert fix.cacheable_share_after > fix.cacheable_share_before


def test_diff_hunk_line_numbers_point_into_the_file():
    _, result = fixed_source(PLUS_CHAIN, "review.py")
    diff = result.fixes[0].diff
    assert diff.startswith("--- a/review.py\n+++ b/review.py\n@@ -")
    header = diff.splitlines()[2]
    start = int(header.split()[1].split(",")[0][1:])
    first_removed = next(i for i, line in enumerate(diff.splitlines()[3:]) if line.startswith("-"))
    assert (
        PLUS_CHAIN.splitlines()[start - 1 + first_removed]
        .strip()
        .startswith('{"role": "user", "content": RULES')
    )


def test_escapes_are_not_split():
    source = """
from openai import OpenAI
client = OpenAI()
SYSTEM = "You answer questions about one contract, quoting clauses exactly, and never give legal advice."

def ask(contract):
    a = client.completions.create(model="m", prompt=f"{SYSTEM}\\\\nParties of\\\\n{contract}")
    b = client.completions.create(model="m", prompt=f"{SYSTEM}\\\\nPayment terms of\\\\n{contract}")
    return a, b
"""
    new, result = fixed_source(source, "x.py")
    assert result.fixes and result.fixes[0].diff
    ast.parse(new)  # a split inside `\\\\n` would have produced an invalid or different literal
    # `\\n` here is an escaped backslash, not a newline: the shared text has no word boundary to cut at.
    assert 'prompt=f"{SYSTEM}Contract:\\n{contract}\\n\\n\\\\nParties of\\\\n"' in new
    assert "Pa{contract}" not in new


def test_prompts_built_in_pieces_get_a_manual_fix_not_a_wrong_diff():
    source = """
from openai import OpenAI
client = OpenAI()
SYSTEM = "You answer questions about one contract, quoting clauses exactly, and never give legal advice."

def ask(contract):
    first = "Parties of:\\n" + contract
    a = client.completions.create(model="m", prompt=SYSTEM + first)
    b = client.completions.create(model="m", prompt=f"{SYSTEM}Payment terms of:\\n{contract}")
    return a, b
"""
    new, result = fixed_source(source, "x.py")
    [fix] = result.fixes
    assert fix.diff == "" and "edit by hand" in fix.description
    assert new == source


def test_form_feed_and_crlf_do_not_shift_the_rewrite():
    source = PLUS_CHAIN.replace("import litellm\n", "import litellm\n\x0c\n# page break above\n").replace(
        "\n", "\r\n"
    )
    new, result = fixed_source(source, "review.py")
    assert result.fixes[0].diff
    ast.parse(new)
    assert (
        'RULES + "Contract:\\n" + contract + "\\n\\n" + "\\nList the parties in the contract above.\\n"'
        in new
    )
    assert "\x0c" in new and new.count("\r\n") == source.count("\r\n")


def test_the_label_that_introduced_the_moved_input_points_back_at_it():
    """ "Extract entities from:" used to end the prompt with nothing after it once the document moved; it
    now reads "... from the document above." (or "Classify document above." where the label already names
    it), and every call starts with the same neutral "Document:" line, so the prefix stays shared. Text
    that is no label ("List the risks for ") is left alone."""
    from compiler.codemods import _point_back

    assert (
        _point_back("\\nExtract entities from:\\n", "document")
        == "\\nExtract entities from the document above.\\n"
    )
    assert _point_back("\\nClassify document:\\n", "document") == "\\nClassify document above.\\n"
    assert (
        _point_back("Summary of the customer_note: ", "customer_note")
        == "Summary of the customer_note above. "
    )
    assert _point_back("\\nList the risks for ", "contract") == "\\nList the risks for "
    assert _point_back("ratio 3:4", "contract") == "ratio 3:4"
