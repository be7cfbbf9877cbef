"""Data flow: an abstract interpreter over the module's `ast` that records every LLM call it reaches.

Why `ast` and not libcst here: the compiler must stay within 2x of a bare libcst parse, and libcst's
position metadata alone costs ~1.8x a parse, while CPython's `ast` gives exact positions for free and
parses ~10x faster. libcst is used where its lossless tree matters: the codemods (`codemods.py`).

The interpreter runs the module symbolically, once:
- module and class constants are folded to their literal text;
- top-level code and `main()` run as the *driver*: their loops iterate over requests, not inside one;
- a call to a function or method of this module is inlined with the caller's argument values, so
  prompts are followed across functions (`s += ...` through four functions, SGLang style);
- a function that nothing in the module calls is analysed on its own with symbolic parameters;
- loop bodies run twice, so what the second iteration sees (a growing history, the previous call's
  output) is visible; loops over constant lists are unrolled when they make no LLM call;
- branches run both arms and merge what they assigned.

A wrapper that makes exactly one LLM call (`def llm_extract(self, prompt): return client...create()`)
is reported at the wrapper's call site, so three stages through one helper stay three calls.

One class, `Interpreter`, assembled from parts, one module each:

- `core`         the class and its entry points (`run`, functions nothing calls);
- `state`        the state the parts share and what each offers the others;
- `frames`       function, loop and branch frames (what a reached LLM call records);
- `scopes`       names, classes, imports and binding (what a name means in a frame);
- `statements`   blocks within the budget, assignments, branches, loops;
- `expressions`  the symbolic value of each expression;
- `calls`        calls: Python's own text operations, inlining the module's functions, recording;
- `sdk`          client-SDK knowledge (objects SDKs build, volatile sources, prompt readers):
                 where framework adapters plug in;
- `drive`        agent code a framework runs (a LangGraph graph's nodes), run through an adapter;
- `nodes`        positions and labels of `ast` nodes.
"""

from compiler.interpreter.core import Interpreter
from compiler.interpreter.frames import BranchFrame, Frame, FunctionInfo, LoopFrame
from compiler.interpreter.nodes import dotted_name, loc_of, short_source
from compiler.interpreter.sdk import VOLATILE_FUNCTIONS
from compiler.interpreter.state import DRIVER_FUNCTIONS
from compiler.interpreter.statements import NODES_PER_CHARGE

__all__ = [
    "DRIVER_FUNCTIONS",
    "NODES_PER_CHARGE",
    "VOLATILE_FUNCTIONS",
    "BranchFrame",
    "Frame",
    "FunctionInfo",
    "Interpreter",
    "LoopFrame",
    "dotted_name",
    "loc_of",
    "short_source",
]
