"""Projects, not files: imports of the project's own modules are followed (issue 14, item 1).

Each project here is a dict of module name -> source, as the caller (the CLI, the watcher) reads it from
disk; the compiler never touches the files. Written here in the shapes agent code takes: prompts in
their own module, an LLM helper module, package re-exports, a script beside its prompts.
"""

from __future__ import annotations

import textwrap

from compiler.api import compile_source, fixed_source
from compiler.model import CompileResult, PatternKind
from compiler.project import Project, module_name

SYSTEM = (
    "You are a research assistant for a due-diligence team. Cite the document section for every claim, "
    "say 'not stated' when the documents do not answer, and never speculate about figures or dates."
)

PROMPTS = f'''
SYSTEM = "{SYSTEM}"
RULES = "Answer in at most three sentences."


def question_prompt(question):
    return f"Question: {{question}}\\n" + RULES
'''

AGENT = """
from openai import OpenAI

from .prompts import SYSTEM, question_prompt

client = OpenAI()


def answer(question, followup):
    first = client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question_prompt(question)}],
    )
    second = client.chat.completions.create(
        model="m",
        messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": question_prompt(followup)}],
    )
    return first, second
"""


def compile_in(modules: dict[str, str], name: str) -> CompileResult:
    sources = {k: textwrap.dedent(v) for k, v in modules.items()}
    return compile_source(sources[name], f"{name}.py", project=Project(sources, name))


def static_text(result: CompileResult, call: str) -> str:
    return "".join(s.text for s in result.call(call).segments if s.kind == "static")


def test_prompts_imported_from_their_own_module_are_literal_text() -> None:
    result = compile_in({"pkg": "", "pkg.prompts": PROMPTS, "pkg.agent": AGENT}, "pkg.agent")
    assert [c.id for c in result.calls] == ["c1", "c2"]
    for cid in ("c1", "c2"):
        text = static_text(result, cid)
        assert SYSTEM in text and "Question: " in text and "Answer in at most three sentences." in text
    assert [s.name for s in result.call("c1").segments if s.kind == "dynamic"] == ["question"]
    [shared] = [f for f in result.patterns if f.kind is PatternKind.SHARED_PREFIX]
    assert shared.calls == ["c1", "c2"]
    assert result.modules == ["pkg.prompts"]


def test_without_the_project_the_same_file_sees_unknown_values() -> None:
    """The contrast that motivates it: compiled alone, the system prompt is an unknown run-time value."""
    alone = compile_source(textwrap.dedent(AGENT), "agent.py")
    assert SYSTEM not in static_text(alone, "c1")
    assert alone.modules == []


def test_an_import_by_module_alias_and_a_package_re_export() -> None:
    agent = AGENT.replace(
        "from .prompts import SYSTEM, question_prompt",
        "import pkg.prompts as p\nfrom pkg import question_prompt",
    )
    agent = agent.replace('"content": SYSTEM}', '"content": p.SYSTEM}')
    modules = {"pkg": "from .prompts import question_prompt\n", "pkg.prompts": PROMPTS, "pkg.agent": agent}
    result = compile_in(modules, "pkg.agent")
    assert SYSTEM in static_text(result, "c1") and "Question: " in static_text(result, "c1")
    assert sorted(result.modules) == ["pkg", "pkg.prompts"]


def test_a_script_finds_the_module_beside_it() -> None:
    """`import prompts` in agents/agent.py, run as `python agents/agent.py`: its directory is on sys.path."""
    agent = AGENT.replace("from .prompts import SYSTEM, question_prompt", "import prompts")
    agent = agent.replace('"content": SYSTEM}', '"content": prompts.SYSTEM}')
    agent = agent.replace("question_prompt(", "prompts.question_prompt(")
    result = compile_in({"agents.prompts": PROMPTS, "agents.agent": agent}, "agents.agent")
    assert SYSTEM in static_text(result, "c2") and "Question: " in static_text(result, "c2")


LLM_HELPERS = """
from openai import OpenAI

client = OpenAI()


def ask(prompt):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])


def critique_and_revise(draft):
    critique = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Critique: " + draft}])
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"Revise {draft} per {critique}"}])
"""

PIPELINE = """
from pkg.llm import ask, critique_and_revise


def run(topic):
    outline = ask("Outline an article about " + topic)
    draft = ask(f"Write the article from this outline: {outline}")
    return critique_and_revise(draft)
"""


def test_an_llm_wrapper_in_another_module_is_reported_where_this_file_calls_it() -> None:
    result = compile_in({"pkg": "", "pkg.llm": LLM_HELPERS, "pkg.pipeline": PIPELINE}, "pkg.pipeline")
    by_id = {c.id: c for c in result.calls}
    # ask() makes one call: reported at each call site in pipeline.py (lines 6 and 7)
    assert [(by_id[c].module, by_id[c].line, by_id[c].callee) for c in ("c1", "c2")] == [
        ("", 6, "ask"),
        ("", 7, "ask"),
    ]
    # critique_and_revise() makes two: each stays at its line in pkg/llm.py
    assert [(by_id[c].module, by_id[c].line) for c in ("c3", "c4")] == [("pkg.llm", 12), ("pkg.llm", 13)]
    edges = {(e.source, e.target) for e in result.edges}
    assert {("c1", "c2"), ("c2", "c3"), ("c2", "c4"), ("c3", "c4")} <= edges
    assert result.modules == ["pkg.llm"]


def test_an_import_cycle_and_a_module_that_does_not_parse_stop_nothing() -> None:
    prompts = PROMPTS + "\nfrom pkg.agent import answer\n"
    modules = {"pkg": "", "pkg.prompts": prompts, "pkg.agent": AGENT, "pkg.broken": "def (:\n"}
    result = compile_in(modules, "pkg.agent")
    assert SYSTEM in static_text(result, "c1")
    broken = AGENT.replace(
        "from .prompts import SYSTEM, question_prompt", "from .broken import SYSTEM, question_prompt"
    )
    modules["pkg.agent"] = broken
    result = compile_in(modules, "pkg.agent")
    assert [c.id for c in result.calls] == ["c1", "c2"]
    assert any("pkg.broken does not parse" in d.message for d in result.diagnostics)


def test_third_party_modules_stay_opaque_even_when_named_like_project_modules() -> None:
    """Only names the project holds resolve into it: `openai` here is still the SDK."""
    result = compile_in({"pkg": "", "pkg.prompts": PROMPTS, "pkg.agent": AGENT}, "pkg.agent")
    assert {c.api for c in result.calls} == {"client.chat.completions.create"}


def test_a_fix_never_rewrites_this_file_at_another_modules_positions() -> None:
    """The prompt is built in prompts.py with the clock first: the finding stands, but the rewrite of
    agent.py must not apply prompts.py's line and column numbers to agent.py."""
    prompts = (
        '''
import time

LONG = "'''
        + " ".join(["Rules for the analyst."] * 30)
        + """"


def build(question):
    return "Time: " + time.ctime() + "\\n" + LONG + question
"""
    )
    agent = """
from openai import OpenAI
from .prompts import build

client = OpenAI()


def ask(question):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": build(question)}])
"""
    sources = {"pkg": "", "pkg.prompts": prompts, "pkg.agent": agent}
    fixed, result = fixed_source(agent, "pkg/agent.py", project=Project(sources, "pkg.agent"))
    assert PatternKind.DYNAMIC_PREFIX.value in result.pattern_kinds()
    assert fixed == agent


def test_module_names_from_paths() -> None:
    assert module_name("pkg/prompts.py") == "pkg.prompts"
    assert module_name("pkg/__init__.py") == "pkg"
    assert module_name("agent.py") == "agent"
    assert module_name("my-scripts/agent.py") is None  # not importable: no module name
    assert module_name("README.md") is None


def test_relative_imports_resolve_from_the_importing_package() -> None:
    p = Project({"a": "", "a.b": "", "a.b.c": "", "a.b.d": "", "a.x": ""}, "a.b.c")
    assert p.resolve_from("a.b.c", 1, "d") == "a.b.d"
    assert p.resolve_from("a.b.c", 2, "x") == "a.x"
    assert p.resolve_from("a.b", 1, "d") == "a.b.d"  # a package's own __init__ imports from itself
    assert p.resolve_from("a.b.c", 0, "a.x") == "a.x"


def test_the_sample_project_compiles_to_its_dag() -> None:
    """data/agents/projects/support_desk: LangChain templates in prompts.py, two LCEL chains in agent.py."""
    from pathlib import Path

    from daemon.project_files import ProjectFiles

    root = Path(__file__).resolve().parents[2] / "data" / "agents" / "projects"
    agent = root / "support_desk" / "agent.py"
    project = ProjectFiles(root).project_for(agent)
    assert sorted(project.modules) == ["support_desk", "support_desk.agent", "support_desk.prompts"]
    result = compile_source(agent.read_text(), str(agent), project=project)
    assert [(c.line, c.style.value, c.callee, c.output_var) for c in result.calls] == [
        (15, "langchain", "triage_chain.invoke", "category"),
        (16, "langchain", "answer_chain.invoke", None),
    ]
    assert [(e.source, e.target, e.variables) for e in result.edges] == [("c1", "c2", ["category"])]
    assert sorted((f.kind.value, tuple(f.calls)) for f in result.patterns) == [
        ("SEQUENTIAL_CHAIN", ("c1", "c2")),
        ("SHARED_PREFIX", ("c1", "c2")),
    ]
    policy = "You are the support desk of Acme Cloud."
    assert all(policy in static_text(result, c) for c in ("c1", "c2"))
    assert result.modules == ["support_desk.prompts"]
