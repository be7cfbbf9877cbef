"""Bind a compiled agent to one input record: `CompileResult` + values -> the run's `RunWorkload`.

The compiler describes each prompt as static text and dynamic segments that say where their text
comes from; this module fills them for one concrete run:

- a parameter (or a value the compiler could not follow) is looked up in the input record: by the
  exact expression, else by evaluating it (`vars['company']`, `self.doc`, `cfg.title`), else by its
  last name (`self.document` -> `document`);
- a loop variable is bound by running the loop header over the record's values: `for q in questions`,
  `for i, v in enumerate(items)`, `for k in range(n)`, or over a call's outputs (`for b in r.choices`);
- a call's output refers to the execution that produced it: the same iteration in a shared loop, the
  previous iteration for loop-carried data, all of them (joined) after the loop;
- `.format(**x)` fills (a run-time template) are applied with the values they name;
- volatile values (`uuid4()`, `datetime.now()`) are drawn fresh at send time, as the agent would.

Two things the compiler cannot see are replayed by rule, and every workload says so in its notes:
a growing history (`history += ...` in a loop) becomes the earlier outputs inserted before the
prompt's closing text, and only the first arm of an if/else is replayed. A value missing from the
record raises `BindingError` naming the call and the variable.

The expressions evaluated here (segment names, `.format(**x)` fills, loop headers and targets, `n=`)
come as the compiler's structured references (`compiler.model.Ref`), never as text to parse: an input
record may still name a value by the expression's exact text (`"vars['company']": ...`), which is
looked up first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from compiler.model import (
    CallSite,
    CompileResult,
    LoopContext,
    Ref,
    RefAttribute,
    RefBinOp,
    RefCall,
    RefConstant,
    RefName,
    RefSubscript,
    RefTuple,
    Segment,
    SourceKind,
    ref_source,
)
from executor.errors import BindingError
from executor.inputs import InputRecord
from executor.workload import (
    Execution,
    HistoryRef,
    OutputRef,
    Piece,
    RoleMark,
    RunWorkload,
    VolatileRef,
    refs_of,
)

DEFAULT_MAX_TOKENS = 16
DEFAULT_WHILE_ITERATIONS = 3
MAX_EXECUTIONS_PER_CALL = 64
ITERATIONS_KEY = "_iterations"  # an input record may set how often a `while` loop runs


@dataclass(frozen=True)
class OutVal:
    """A loop item that is (part of) a call's output: any attribute or index of it is the text.

    `lineage` says which output of each earlier call this one descends from: in a tree search the
    leaf built on plan 2's second solution must quote plan 2, not plan 1.
    """

    ref: OutputRef
    lineage: tuple[tuple[str, OutputRef], ...] = ()


LINEAGE = "\0lineage"  # reserved loop-scope key: the lineage of the current iteration


class _Missing(Exception):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)


@dataclass
class BindOptions:
    max_tokens_cap: int | None = None
    default_max_tokens: int = DEFAULT_MAX_TOKENS
    while_iterations: int = DEFAULT_WHILE_ITERATIONS


class _Env:
    def __init__(self, record: dict[str, Any], loop_vars: dict[str, Any]) -> None:
        self.record, self.loop_vars = record, loop_vars

    def name(self, ident: str) -> Any:
        if ident in self.loop_vars:
            return self.loop_vars[ident]
        if ident in self.record:
            return self.record[ident]
        raise _Missing(ident)

    def eval(self, text: str, ref: Ref | None) -> Any:
        """The value of an expression: by its exact text in the record, else by evaluating its reference."""
        if text in self.loop_vars:
            return self.loop_vars[text]
        if text in self.record:
            return self.record[text]
        if ref is None:  # no reference: too large, or a label the compiler cut short
            raise _Missing(text)
        return self._eval(ref)

    def _eval(self, ref: Ref) -> Any:
        if isinstance(ref, RefName):
            return self.name(ref.name)
        if isinstance(ref, RefConstant):
            return ref.value
        if isinstance(ref, RefAttribute):
            try:
                base = self._eval(ref.value)
            except _Missing:
                # `self.document`, `state.question`: the object is the agent's; the record names the field.
                return self.name(ref.attr)
            if isinstance(base, OutVal):
                return base
            if isinstance(base, dict):
                if ref.attr in base:
                    return base[ref.attr]
                raise _Missing(ref_source(ref))
            raise _Missing(ref_source(ref))
        if isinstance(ref, RefSubscript):
            base = self._eval(ref.value)
            if isinstance(base, OutVal):
                return base
            key = self._eval(ref.index)
            try:
                return base[key]
            except (KeyError, IndexError, TypeError):
                raise _Missing(ref_source(ref)) from None
        if isinstance(ref, RefCall):
            return self._call(ref)
        if isinstance(ref, RefTuple):
            return [self._eval(e) for e in ref.elts]
        if isinstance(ref, RefBinOp):
            left, right = self._eval(ref.left), self._eval(ref.right)
            if ref.op == "+":
                return left + right
            return left - right if ref.op == "-" else left * right
        raise _Missing(ref_source(ref))

    def _call(self, ref: RefCall) -> Any:
        func = ref.func
        args = [self._eval(a) for a in ref.args]
        if isinstance(func, RefName):
            if func.name == "range":
                return list(range(*[int(a) for a in args]))
            if func.name == "enumerate":
                return list(enumerate(args[0]))
            if func.name == "zip":
                return list(zip(*args))
            if func.name in ("list", "sorted", "tuple"):
                return list(args[0]) if func.name != "sorted" else sorted(args[0])
            if func.name == "len":
                return len(args[0])
        if isinstance(func, RefAttribute) and func.attr in ("items", "values", "keys"):
            base = self._eval(func.value)
            if isinstance(base, dict):
                return list(getattr(base, func.attr)())
        raise _Missing(ref_source(ref))


def _assign(target: str | None, ref: Ref | None, item: Any, into: dict[str, Any]) -> None:
    if not target:
        return
    if ref is None:
        into[target] = item
        return
    _bind(ref, item, into)


def _bind(ref: Ref, item: Any, into: dict[str, Any]) -> None:
    if isinstance(ref, RefName):
        into[ref.name] = item
    elif isinstance(ref, RefTuple):
        values = list(item) if not isinstance(item, OutVal) else [item] * len(ref.elts)
        for sub, value in zip(ref.elts, values):
            _bind(sub, value, into)


class Binder:
    def __init__(self, result: CompileResult, options: BindOptions | None = None) -> None:
        self.result = result
        self.options = options or BindOptions()
        self.calls = {c.id: c for c in result.calls}
        self.position = {cid: i for i, cid in enumerate(result.order)}
        # Conditions cannot be evaluated on a replay. Where both arms of a branch hold calls, the first
        # arm stands for the branch; a lone else arm (the code after `if bad: return`) always runs.
        self.if_arm_lines = {b.line for c in result.calls for b in c.branches if b.arm == "if"}

    # --- loops ----------------------------------------------------------------------------------
    def _agent_loops(self, call: CallSite) -> list[LoopContext]:
        return [lp for lp in call.loops if not lp.request_loop]

    def _loop_items(
        self, loop: LoopContext, env: _Env, done: dict[str, list[Execution]], call: CallSite, notes: list[str]
    ) -> list[Any]:
        if loop.over_call:
            source = self._loop_source(call, loop.over_call)
            items: list[Any] = []
            for ex in done.get(source, []):
                items.extend(
                    OutVal(OutputRef(ex.id, i), (*ex.lineage, (source, OutputRef(ex.id, i))))
                    for i in range(ex.n)
                )
            return items
        if loop.kind == "while":
            n = env.record.get(ITERATIONS_KEY, self.options.while_iterations)
            notes.append(
                f"{call.id}: the while loop at line {loop.line} is replayed {n} times "
                f"(set `{ITERATIONS_KEY}` in the input record to change it)"
            )
            return list(range(int(n)))
        try:
            value = env.eval(loop.iterates, loop.iterates_ref)
        except _Missing as missing:
            if loop.iterates.startswith("range("):
                notes.append(
                    f"{call.id}: `{loop.iterates}` at line {loop.line}: {missing.name} is not in the "
                    f"input record; replayed {self.options.while_iterations} times"
                )
                return list(range(self.options.while_iterations))
            raise BindingError(
                call.id,
                missing.name,
                f"the loop at line {loop.line} iterates over `{loop.iterates}`, but the input "
                f"record has no `{missing.name}`",
            ) from None
        if isinstance(value, dict):
            return list(value)
        if isinstance(value, str) or not isinstance(value, Iterable):
            raise BindingError(
                call.id,
                loop.iterates,
                f"the loop at line {loop.line} iterates over `{loop.iterates}`, which is "
                f"{type(value).__name__} in the input record, not a list",
            )
        return list(value)

    def _loop_source(self, call: CallSite, over_call: str) -> str:
        """The call whose outputs a loop really walks: the compiler names the first call the iterable
        came from; when the loop body's prompt quotes outputs of later calls derived from it (a tree
        search level by level), the latest of those is the one being iterated."""
        origins = {
            o
            for seg in call.segments
            if seg.kind == "dynamic" and seg.varies_in_loop
            for o in seg.origin_calls
            if o != call.id and o in self.position
        }
        latest = max(origins, key=lambda o: self.position[o], default=over_call)
        if over_call in self.position and self.position[latest] < self.position[over_call]:
            return over_call
        return latest

    def _iterations(
        self, call: CallSite, record: dict[str, Any], done: dict[str, list[Execution]], notes: list[str]
    ) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
        """Every iteration vector of the call's loops (outermost first) with its loop variables."""
        out: list[tuple[tuple[int, ...], dict[str, Any]]] = [((), {})]
        for loop in self._agent_loops(call):
            nxt: list[tuple[tuple[int, ...], dict[str, Any]]] = []
            for vec, loop_vars in out:
                items = self._loop_items(loop, _Env(record, loop_vars), done, call, notes)
                for i, item in enumerate(items):
                    scope = dict(loop_vars)
                    _assign(loop.target, loop.target_ref, item, scope)
                    if isinstance(item, OutVal):
                        scope[LINEAGE] = (*scope.get(LINEAGE, ()), *item.lineage)
                    nxt.append(((*vec, i), scope))
            out = nxt
        if len(out) > MAX_EXECUTIONS_PER_CALL:
            notes.append(f"{call.id}: {len(out)} iterations, replaying the first {MAX_EXECUTIONS_PER_CALL}")
            out = out[:MAX_EXECUTIONS_PER_CALL]
        return out

    # --- data flow ------------------------------------------------------------------------------
    def _shared_loops(self, a: CallSite, b: CallSite) -> int:
        """How many outer agent loops two calls share (same loop lines, outermost first)."""
        n = 0
        for la, lb in zip(self._agent_loops(a), self._agent_loops(b)):
            if la.line != lb.line:
                break
            n += 1
        return n

    def _output_pieces(
        self, call: CallSite, vec: tuple[int, ...], seg: Segment, done: dict[str, list[Execution]]
    ) -> list[Piece]:
        pieces: list[Piece] = []
        for origin_id in seg.origin_calls:
            origin = self.calls[origin_id]
            execs = done.get(origin_id, [])
            shared = self._shared_loops(call, origin)
            carried = origin_id == call.id or (shared and self.position[origin_id] >= self.position[call.id])
            if carried:
                # Loop-carried: the value from the previous iteration of the innermost shared loop.
                if not vec or vec[shared - 1] == 0:
                    continue
                prev = (*vec[: shared - 1], vec[shared - 1] - 1)
                matches = [e for e in execs if e.vec[:shared] == prev] if origin_id != call.id else []
                if origin_id == call.id:
                    continue  # the call's own earlier outputs: handled as its growing history
                pieces.extend(OutputRef(e.id) for e in matches[-1:])
                continue
            if shared:
                matches = [e for e in execs if e.vec[:shared] == vec[:shared]]
            else:
                matches = execs
            for i, e in enumerate(matches):
                if i:
                    pieces.append("\n")
                pieces.append(OutputRef(e.id))
        return pieces

    def _value_pieces(self, call: CallSite, seg: Segment, env: _Env) -> list[Piece]:
        name = seg.name or seg.text.strip("{}")
        try:
            value = env.eval(name, seg.ref)
        except _Missing as missing:
            raise BindingError(
                call.id,
                name,
                f"the input record has no value for `{name}`"
                + (f" (looked for `{missing.name}`)" if missing.name != name else "")
                + f", which the prompt of {call.id} (line {call.line}) needs",
            ) from None
        if seg.fills:
            fill_map: dict[str, Any] = {}
            fill_refs = seg.fill_refs if len(seg.fill_refs) == len(seg.fills) else [None] * len(seg.fills)
            for fill, fill_ref in zip(seg.fills, fill_refs):
                try:
                    fv = env.eval(fill, fill_ref)
                except _Missing:
                    raise BindingError(
                        call.id,
                        fill,
                        f"`{name}.format(**{fill})` in {call.id} (line "
                        f"{call.line}): the input record has no `{fill}`",
                    ) from None
                if isinstance(fv, dict):
                    fill_map.update(fv)
                else:
                    fill_map[fill] = fv
            try:
                value = str(value).format_map(fill_map)
            except (KeyError, IndexError, ValueError) as exc:
                raise BindingError(
                    call.id,
                    name,
                    f"filling `{name}` for {call.id} (line {call.line}) failed: {type(exc).__name__} {exc}",
                ) from None
        if isinstance(value, OutVal):
            return [value.ref]
        return [value if isinstance(value, str) else str(value)]

    # --- the workload ---------------------------------------------------------------------------
    def bind(self, record: InputRecord, run: int) -> RunWorkload:
        notes: list[str] = []
        done: dict[str, list[Execution]] = {}
        executions: list[Execution] = []
        for cid in self.result.order:
            call = self.calls[cid]
            skipped = next((b for b in call.branches if b.arm != "if" and b.line in self.if_arm_lines), None)
            if skipped is not None:
                notes.append(
                    f"{cid}: in the {skipped.arm} arm of the branch at line {skipped.line}, whose "
                    "first arm has calls too; only the first arm is replayed"
                )
                continue
            loops = self._agent_loops(call)
            independent = bool(loops) and not call.loop_carried and not call.grows_per_iteration
            mine: list[Execution] = []
            for vec, loop_vars in self._iterations(call, record.values, done, notes):
                env = _Env(record.values, loop_vars)
                lineage: dict[str, OutputRef] = dict(loop_vars.get(LINEAGE, ()))
                pieces: list[Piece] = []
                for seg in call.segments:
                    if seg.kind == "static" and seg.synthetic and seg.role:
                        pieces.append(RoleMark(seg.role))  # sent as a chat message, not as this text
                    elif seg.kind == "static":
                        pieces.append(seg.text)
                    elif seg.source is SourceKind.VOLATILE:
                        pieces.append(VolatileRef(seg.name or seg.text))
                    elif seg.origin_calls and all(o in lineage for o in seg.origin_calls):
                        pieces.extend(lineage[o] for o in seg.origin_calls)
                    elif seg.source is SourceKind.CALL_OUTPUT and seg.origin_calls:
                        done_now = {**done, cid: mine}
                        pieces.extend(self._output_pieces(call, vec, seg, done_now))
                    elif seg.origin_calls:
                        # A comprehension or helper variable over a call's output (`comp` in
                        # `[s + comp for comp in comps]`): its name means nothing in the record.
                        try:
                            pieces.extend(self._value_pieces(call, seg, env))
                        except BindingError:
                            pieces.extend(self._output_pieces(call, vec, seg, {**done, cid: mine}))
                    else:
                        pieces.extend(self._value_pieces(call, seg, env))
                if call.grows_per_iteration and mine:
                    history = HistoryRef(tuple(e.id for e in mine))
                    at = len(pieces) - 1 if pieces and isinstance(pieces[-1], str) else len(pieces)
                    pieces.insert(at, history)
                n = self._fanout(call, _Env(record.values, loop_vars))
                eid = cid if not loops else f"{cid}#{len(mine)}"
                ex = Execution(
                    id=eid,
                    call_id=cid,
                    iteration=len(mine),
                    pieces=pieces,
                    max_tokens=self._max_tokens(call),
                    n=n,
                    order_key=(loops[0].line if loops else call.line, _flat(vec), call.line),
                    group=cid if independent else None,
                    vec=vec,
                    lineage=tuple(lineage.items()),
                )
                ex.deps = refs_of(pieces)
                if (call.loop_carried or call.grows_per_iteration) and mine:
                    ex.deps.add(mine[-1].id)  # iterations that feed each other run in order
                mine.append(ex)
            done[cid] = mine
            executions.extend(mine)
        if not executions:
            raise BindingError(
                "-",
                "-",
                "no call of the agent is replayed for this record (all are in "
                "branches not taken or loops over empty lists)",
            )
        if any(c.grows_per_iteration for c in self.result.calls):
            notes.append(
                "growing histories are replayed as each earlier output on its own line, inserted "
                "before the prompt's closing text (the exact text the agent appends is not in the "
                "compiled prompt)"
            )
        return RunWorkload(run=run, input_line=record.line, executions=executions, notes=notes)

    def _max_tokens(self, call: CallSite) -> int:
        n = call.max_tokens or self.options.default_max_tokens
        if self.options.max_tokens_cap is not None:
            n = min(n, self.options.max_tokens_cap)
        return max(1, n)

    def _fanout(self, call: CallSite, env: _Env) -> int:
        if isinstance(call.fanout, int):
            return max(1, call.fanout)
        if isinstance(call.fanout, str):
            try:
                return max(1, int(env.eval(call.fanout, call.fanout_ref)))
            except (_Missing, TypeError, ValueError):
                raise BindingError(
                    call.id,
                    call.fanout,
                    f"{call.id} (line {call.line}) fans out with "
                    f"`n={call.fanout}`, which the input record does not give",
                ) from None
        return 1


def _flat(vec: tuple[int, ...]) -> int:
    out = 0
    for i in vec:
        out = out * 1000 + i
    return out


def bind_all(
    result: CompileResult, records: list[InputRecord], options: BindOptions | None = None
) -> list[RunWorkload]:
    binder = Binder(result, options)
    return [binder.bind(r, i) for i, r in enumerate(records)]


__all__ = ["BindOptions", "Binder", "OutVal", "bind_all"]
