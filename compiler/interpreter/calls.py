"""Calls: what evaluating `f(...)` gives, and the LLM calls recorded on the way.

A call is, in this order: an object an SDK builds, a volatile value (both `sdk.py`); one of Python's
own text or container operations modelled here (`str.format`, `join`, `textwrap.dedent`,
`list.append`, `dict.update`); a function or class of the module, inlined with the caller's argument
values so prompts are followed across functions; an LLM call (`sdk.recognise`), recorded as an
`Occurrence` with what `sdk.read_request` reads from its arguments; else a call the interpreter knows
nothing about, whose result carries the data of everything passed in.

A wrapper that makes exactly one LLM call is reported at the wrapper's call site (`_inline`). The
calls an adapter says a recognised call may go on to make (`Adapter.follow_ups`) are recorded with it
(`_record`), as arms of a choice at its call site.
"""

from __future__ import annotations

import ast
from dataclasses import replace

from compiler.callsites import CallMatch, match_name
from compiler.interpreter.frames import BranchFrame, Frame, FunctionInfo, local_key
from compiler.interpreter.nodes import dotted_name, label, loc_of, short_name, short_source
from compiler.adapters.base import SdkCall, static_text
from compiler.interpreter.sdk import construct, is_volatile, read_request, recognise
from compiler.interpreter.state import DRIVER_FUNCTIONS, State
from compiler.model import CallStyle, SourceKind
from compiler.templates import dedent_text, format_text, join_text, map_static, strip_text
from compiler.values import (
    Const,
    FuncRef,
    Instance,
    Mapping,
    ModuleRef,
    Occurrence,
    Opaque,
    Seq,
    Static,
    Text,
    Value,
    merge_values,
    origins_of,
    text_of,
    texts_in,
    varies_of,
)

MAX_INLINE_DEPTH = 16
MAX_PLAIN_INLINES = 4  # a function that cannot reach an LLM call is followed this often, then summarised
_STR_CASE = {"lower": str.lower, "upper": str.upper, "title": str.title, "capitalize": str.capitalize}
_LIST_MUTATORS = frozenset({"append", "extend", "insert"})


class Calls(State):
    def _call(self, node: ast.Call, fr: Frame, awaited: bool = False) -> Value:
        func = node.func
        receiver: Value | None = None
        func_value: Value | None = None
        qualified: str | None = None
        if isinstance(func, ast.Attribute):
            receiver = self._eval(func.value, fr)
            if isinstance(receiver, ModuleRef):
                member = self._module_member(receiver.qualname, func.attr)
                if isinstance(member, ModuleRef):
                    qualified = member.qualname
                else:
                    func_value = member  # a project module's function or class
            elif isinstance(receiver, Instance | FuncRef):
                func_value = self._attribute(func, fr)
        elif isinstance(func, ast.Name):
            func_value = self._lookup(func.id, fr)
            if isinstance(func_value, ModuleRef):
                qualified = func_value.qualname
        else:
            func_value = self._eval(func, fr)
        args: list[Value] = []
        for a in node.args:
            v = self._eval(a, fr)
            if isinstance(a, ast.Starred) and isinstance(v, Seq) and v.elem is None:
                args.extend(v.items)
            else:
                args.append(v)
        kwargs: dict[str, Value] = {}
        star: Value | None = None
        for kw in node.keywords:
            v = self._eval(kw.value, fr)
            if kw.arg is None:
                if isinstance(v, Mapping):
                    kwargs.update(dict(v.items))
                else:
                    star = v
            else:
                kwargs[kw.arg] = v
        method = (
            func.attr if isinstance(func, ast.Attribute) else (func.id if isinstance(func, ast.Name) else "")
        )
        call = SdkCall(node, qualified, method, receiver, func_value, args, kwargs, star, awaited)

        driven = self._drive(call, fr)  # a framework running agent code (`drive.py`)
        if driven is not None:
            return driven
        built = construct(self._classes_described(call), self.adapters)
        if built is not None:
            return built
        if is_volatile(call):
            varies = frozenset(l.id for l in self.loops)
            return Opaque(
                f"{method}()",
                SourceKind.VOLATILE,
                frozenset(),
                f"volatile:{node.lineno}:{node.col_offset}",
                varies,
            )
        special = self._builtin_call(call, fr)
        if special is not None:
            return special
        if isinstance(func_value, FuncRef):
            if func_value.qualname in self.classes:
                self._ensure_init(func_value.qualname)
                return Instance(func_value.qualname)
            info = self.functions.get(func_value.qualname)
            if info is not None:
                self_cls = func_value.bound_self or (info.cls if isinstance(receiver, Instance) else None)
                if isinstance(receiver, Instance):
                    self_cls = receiver.cls
                return self._inline(info, args, kwargs, self_cls, node, fr, star)

        match = recognise(call, self.patterns, self.adapters)
        if match is not None:
            return self._record(match, call, fr)
        return self._generic_call(call, fr)

    def _classes_described(self, call: SdkCall) -> SdkCall:
        """The call as an adapter's `construct` sees it: a project class handed to a library callable
        (`dspy.Predict(QA)`) is its namespace, as the library reads it, not a bare reference."""
        if call.qualified is None or not any(
            isinstance(v, FuncRef) and v.qualname in self.classes for v in (*call.args, *call.kwargs.values())
        ):
            return call

        def described(v: Value) -> Value:
            return self._namespace(v.qualname) if isinstance(v, FuncRef) and v.qualname in self.classes else v

        return replace(
            call,
            args=[described(a) for a in call.args],
            kwargs={k: described(v) for k, v in call.kwargs.items()},
        )

    def _namespace(self, cls: str, seen: set[str] | None = None) -> Mapping:
        """A class's `__name__`, `__doc__`, `__annotations__` (as source text) and `__bases__` (project
        bases described in turn, once each, others by name as written), then its attributes in order."""
        seen = seen if seen is not None else set()
        seen.add(cls)  # a base reached twice (a diamond, a cycle) is named, not described again
        node = self.classes[cls]
        doc = ast.get_docstring(node)
        annotations = tuple(
            (st.target.id, Text((Static(short_source(st.annotation, 200)),)))
            for st in node.body
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)
        )
        prefix = cls.partition(":")[0] + ":" if ":" in cls else ""
        bases: list[Value] = []
        for base in self.class_bases.get(cls, []):
            found = base if base in self.classes else prefix + base  # as `scopes._class_attr` resolves it
            if found in self.classes and found not in seen:
                bases.append(self._namespace(found, seen))
            else:
                bases.append(Text((Static(base),)))
        return Mapping(
            (
                ("__name__", Text((Static(node.name),))),
                ("__doc__", Text((Static(doc),)) if doc is not None else Const(None)),
                ("__annotations__", Mapping(annotations)),
                ("__bases__", Seq(tuple(bases))),
                *self.class_attrs.get(cls, {}).items(),
            )
        )

    def _builtin_call(self, call: SdkCall, fr: Frame) -> Value | None:
        """Python's own operations whose effect on text we model: str methods, textwrap, list and dict mutation."""
        qualified, method, receiver, args, node = (
            call.qualified,
            call.method,
            call.receiver,
            call.args,
            call.node,
        )
        if qualified in ("textwrap.dedent", "inspect.cleandoc") and args and isinstance(args[0], Text):
            return dedent_text(args[0])
        if qualified == "str" or (method == "str" and receiver is None and qualified is None):
            return text_of(args[0]) if args else Text(())
        if isinstance(receiver, Text):
            if method == "format":
                return format_text(receiver, args, call.kwargs, call.star)
            if method == "format_map" and args:
                arg = args[0]
                return format_text(
                    receiver,
                    [],
                    dict(arg.items) if isinstance(arg, Mapping) else {},
                    None if isinstance(arg, Mapping) else arg,
                )
            if method == "join" and args:
                return join_text(receiver, args[0], label(node.args[0]) if node.args else "items")
            if method in ("strip", "lstrip", "rstrip") and not args:
                return strip_text(receiver, method)
            if method in _STR_CASE:
                return map_static(receiver, _STR_CASE[method])
            if method in ("replace", "encode", "removeprefix", "removesuffix", "center", "ljust", "rjust"):
                return receiver
        if method in _LIST_MUTATORS and isinstance(node.func, ast.Attribute):
            self._mutate_list(node.func.value, method, args, fr)
            return Const(None)
        if method == "get" and isinstance(receiver, Mapping) and args and static_text(args[0]) is not None:
            # `d.get("k", default)` on a dict we know: its value for a literal key, else the default
            found = receiver.get(static_text(args[0]) or "")
            return found if found is not None else (args[1] if len(args) > 1 else Const(None))
        if method == "update" and isinstance(receiver, Mapping) and args and isinstance(args[0], Mapping):
            target = node.func.value if isinstance(node.func, ast.Attribute) else None
            if target is not None:
                self._bind(target, Mapping(receiver.items + args[0].items), fr, rename=False)
            return Const(None)
        return None

    def _mutate_list(self, target: ast.expr, method: str, args: list[Value], fr: Frame) -> None:
        current = self._eval(target, fr)
        new_elem = args[0] if method == "append" and args else None
        if method == "extend" and args and isinstance(args[0], Seq) and args[0].elem is not None:
            new_elem = args[0].elem
        if new_elem is not None and (
            method == "extend" or (isinstance(current, Seq) and current.elem is not None)
        ):
            # Accumulating elements in a loop (`states.extend(forks)`): keep one representative element;
            # what differs between elements is what varies in the loops active now or in the comprehension.
            active = frozenset(l.id for l in self.loops)
            old = current.elem if isinstance(current, Seq) else None
            loops = (current.elem_loops if isinstance(current, Seq) else frozenset()) | active
            if method == "extend" and isinstance(args[0], Seq):
                loops |= args[0].elem_loops
            base = current.items if isinstance(current, Seq) else ()
            elem = merge_values(old, new_elem, "item") or new_elem
            self._bind(target, Seq(base, elem=elem, elem_loops=loops), fr, rename=False)
            return
        if isinstance(current, Seq) and current.elem is None:
            items = list(current.items)
        elif isinstance(current, Seq) and current.elem is not None:  # (elem None: the branch above)
            items = [*current.items, current.elem]
        else:
            items = [current]
        if method == "append" and args:
            items.append(args[0])
        elif method == "insert" and len(args) == 2:
            items.append(args[1])
        elif method == "extend" and args:
            new = args[0]
            if isinstance(new, Seq) and new.elem is None:
                items.extend(new.items)
            elif isinstance(new, Seq) and not items:
                self._bind(target, new, fr, rename=False)  # `acc = []; acc.extend(comprehension)`
                return
            else:
                items.append(new.elem if isinstance(new, Seq) and new.elem is not None else new)
        self._bind(target, Seq(tuple(items)), fr, rename=False)

    def _generic_call(self, call: SdkCall, fr: Frame) -> Value:
        """A call we know nothing about: its result carries the data of everything passed in."""
        method, receiver, args, kwargs, node = call.method, call.receiver, call.args, call.kwargs, call.node
        values = [v for v in (receiver, *args, *kwargs.values(), call.star) if v is not None]
        origins = frozenset().union(*(origins_of(v) for v in values))
        varies = frozenset().union(*(varies_of(v) for v in values))
        is_constructor = method[:1].isupper()
        payload = () if is_constructor else tuple(texts_in(v) for v in args if texts_in(v).parts)
        if (
            isinstance(receiver, Opaque)
            and args
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
        ):
            # `inp.set_data_from_numpy(np.array([prompt]))`: the object now holds the prompt.
            texts = tuple(texts_in(v) for v in args if texts_in(v).parts)
            if texts:
                fr.env[node.func.value.id] = replace(
                    receiver,
                    payload=receiver.payload + texts,
                    origins=receiver.origins | origins,
                    varies=receiver.varies | varies,
                )
        source = SourceKind.LOCAL
        key = local_key(fr, f"{dotted_name(node.func)}:{node.lineno}")
        if isinstance(receiver, Opaque):
            source, key = receiver.source, receiver.key  # `x.strip()`, `resp.json()`: same data as `x`
        elif len(args) == 1 and isinstance(args[0], Opaque) and not kwargs:
            source, key = args[0].source, args[0].key  # `str(x)`, `json.loads(x)`
        if source is SourceKind.LOCAL and origins:
            source = SourceKind.CALL_OUTPUT  # e.g. `asyncio.gather(*calls)`: it is the calls' outputs
        return Opaque(method or "call", source, origins, key, varies, payload)

    def _inline(
        self,
        info: FunctionInfo,
        args: list[Value],
        kwargs: dict[str, Value],
        self_cls: str | None,
        node: ast.Call | None,
        fr: Frame,
        star: Value | None = None,
    ) -> Value:
        qual = info.qualname
        plain = qual not in self.relevant
        memo_key: tuple[object, ...] | None = None
        if plain and node is not None:
            try:
                memo_key = (qual, self_cls, tuple(args), tuple(sorted(kwargs.items())), star)
                hash(memo_key)
            except TypeError:
                memo_key = None
            if memo_key is not None and memo_key in self._memo:
                return self._memo[memo_key]
        over_budget = plain and self._plain_inlines.get(qual, 0) >= MAX_PLAIN_INLINES
        if over_budget or qual in self.stack or len(self.stack) >= MAX_INLINE_DEPTH or self.budget <= 0:
            values = [*args, *kwargs.values()]
            return Opaque(
                qual,
                SourceKind.LOCAL,
                frozenset().union(*(origins_of(v) for v in values)),
                f"local:{qual}",
                frozenset().union(*(varies_of(v) for v in values)),
            )
        if plain:
            self._plain_inlines[qual] = self._plain_inlines.get(qual, 0) + 1
        call_kwargs = dict(kwargs)  # binding pops from `kwargs`; the fallback below needs them all
        env: dict[str, Value] = {}
        a = info.node.args
        positional = [*a.posonlyargs, *a.args]
        if self_cls is not None and positional and positional[0].arg in ("self", "cls"):
            env[positional[0].arg] = Instance(self_cls)
            positional = positional[1:]
        defaults = list(a.defaults)
        first_default = len(positional) - len(defaults)
        for i, p in enumerate(positional):
            if i < len(args):
                value = args[i]
            elif p.arg in kwargs:
                value = kwargs.pop(p.arg)
            elif i >= first_default:
                value = self._eval(defaults[i - first_default], fr)
            else:
                value = self._param_from_star(star, p.arg, qual)
            env[p.arg] = self._as_param(value, p.arg, qual)
        for p, d in zip(a.kwonlyargs, a.kw_defaults):
            value = (
                kwargs.pop(p.arg)
                if p.arg in kwargs
                else (self._eval(d, fr) if d is not None else self._param_from_star(star, p.arg, qual))
            )
            env[p.arg] = self._as_param(value, p.arg, qual)
        if a.vararg is not None:
            env[a.vararg.arg] = Seq(tuple(args[len(positional) :]))
        if a.kwarg is not None:
            env[a.kwarg.arg] = Mapping(tuple(kwargs.items())) if star is None else star
        callee = Frame(qual, self_cls, env, driver=qual in DRIVER_FUNCTIONS, module=info.module)
        self.analysed.add(qual)
        start = len(self.occurrences)
        depth_loops = len(self.loops)
        self.stack.append(qual)
        try:
            self._exec_block(info.node.body, callee)
        finally:
            self.stack.pop()
        new = self.occurrences[start:]
        short = short_name(qual)
        if node is not None and not new and match_name(short, self.patterns):
            # A named LLM helper whose body we cannot see into (it calls some other library).
            match = CallMatch(CallStyle.NAMED_FUNCTION, dotted_name(node.func), "args")
            # The wrapper's own call stands for the LLM call: its arguments, no receiver.
            call = SdkCall(node, None, "", None, None, args, call_kwargs, None, False)
            return self._record(match, call, fr)
        if (
            node is not None
            and len(new) == 1
            and len(new[0].loops) == depth_loops
            and new[0].id not in self.driven  # a call a framework made is not this function's (`drive.py`)
        ):
            occ = new[0]
            occ.via.append(occ.key)
            occ.key = loc_of(node)
            occ.module = fr.module
            occ.callee = dotted_name(node.func)
            occ.function = fr.func
            occ.branches = tuple(self.branches)
            occ.output_var = None
        result: Value | None = None
        for r in callee.returns:
            result = merge_values(result, r, short)
        value = result if result is not None else Const(None)
        if memo_key is not None and not new:
            self._memo[memo_key] = value
        return value

    def _param_from_star(self, star: Value | None, name: str, qual: str) -> Value:
        if star is not None:
            return Opaque(
                name,
                star.source if isinstance(star, Opaque) else SourceKind.LOCAL,
                origins_of(star),
                f"{getattr(star, 'key', 'star')}[{name}]",
                varies_of(star),
            )
        return Opaque(name, SourceKind.PARAMETER, key=f"param:{qual}:{name}")

    def _as_param(self, value: Value, name: str, qual: str) -> Value:
        """An argument seen from inside the callee: inputs take the parameter's (more telling) name."""
        if isinstance(value, Opaque) and value.source in (
            SourceKind.UNKNOWN,
            SourceKind.LOCAL,
            SourceKind.PARAMETER,
        ):
            return replace(
                value,
                name=name,
                source=SourceKind.PARAMETER
                if value.source is not SourceKind.LOCAL or not value.origins
                else value.source,
            )
        return value

    # ----------------------------------------------------------------------------- recording

    def _record(self, match: CallMatch, call: SdkCall, fr: Frame) -> Value:
        """Record an LLM call reached now; its value is the call's output."""
        request = read_request(match, call, self.adapters)
        node = call.node
        occ_id = len(self.occurrences)
        self.occurrences.append(
            Occurrence(
                id=occ_id,
                key=loc_of(node),
                site=loc_of(node),
                module=fr.module,
                function=fr.func,
                style=match.style.value,
                api=match.api,
                callee=dotted_name(node.func),
                is_async=request.is_async,
                prompt=request.prompt,
                loops=tuple(self.loops),
                branches=tuple(self.branches),
                fanout=request.fanout,
                max_tokens=request.max_tokens,
                iteration=self.iteration,
            )
        )
        varies = frozenset(l.id for l in self.loops)
        output = Opaque(
            "output",
            SourceKind.CALL_OUTPUT,
            frozenset({occ_id}),
            f"call:{occ_id}",
            varies,
            fanout=request.fanout,
        )
        adapter = next((a for a in self.adapters if a.NAME == match.kind), None)
        if adapter is None:
            return output
        first = self.occurrences[occ_id]
        line, col, end_line, end_col = first.key
        steps = adapter.follow_ups(match, call, output)
        origins = output.origins
        try:
            step = next(steps)
            while True:
                # The model picks these at run time: each is an arm of a choice made at the call site,
                # weighed like a `match` case (`prefix.branch_weights`). The calls happen inside the
                # recognised call, so they sit at its place, told apart by a shifted end column.
                key = (line, col, end_line, end_col + len(self.occurrences) - occ_id)
                arm = BranchFrame(line, ast.Name(id=step.arm), "case")
                follow = replace(
                    first,
                    id=len(self.occurrences),
                    key=key,
                    site=key,
                    callee=step.callee,
                    prompt=step.prompt,
                    branches=(*first.branches, arm),
                    fanout=None,
                    max_tokens=None,
                    output_var=None,
                    via=[],
                )
                self.occurrences.append(follow)
                out = Opaque(
                    "output", SourceKind.CALL_OUTPUT, frozenset({follow.id}), f"call:{follow.id}", varies
                )
                origins |= out.origins
                step = steps.send(out)
        except StopIteration:
            pass
        # The recognised call returns after its follow-ups: its result may be any of their outputs.
        return replace(output, origins=origins)
