"""Load users' own framework adapters (`compiler.adapters.base.Adapter`) by name or entry point.

An adapter is named `package.module:Class` (the config's `[watch] adapters`, `compile --adapter`), or
published by an installed package under the `charter_tui.adapters` entry-point group. Importing it runs
the user's own code, so it happens here, at the edge, never in the compiler. A name that does not load,
or a class that is not an adapter, is refused with a message naming it.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from compiler.adapters import ADAPTERS, Adapter

ENTRY_POINT_GROUP = "charter_tui.adapters"


class AdapterError(ValueError):
    """An adapter named in the configuration or on the command line that cannot be used."""


def load_adapter(spec: str) -> type[Adapter]:
    """`package.module:Class` imported and checked."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AdapterError(f"adapter {spec!r}: expected package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail any way: name it, do not crash on it
        raise AdapterError(
            f"adapter {spec!r}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    return _checked(spec, getattr(module, attr, None))


def load_adapters(specs: list[str], installed: bool = True) -> tuple[type[Adapter], ...]:
    """The adapters named in `specs`, then those installed under the entry-point group (unless
    `installed` is False), each once, refusing a name a built-in adapter already uses."""
    found: list[type[Adapter]] = [load_adapter(s) for s in specs]
    if installed:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                found.append(_checked(f"entry point {ep.name}", ep.load()))
            except AdapterError:
                raise
            except Exception as exc:
                raise AdapterError(
                    f"adapter entry point {ep.name} ({ep.value}): {type(exc).__name__}: {exc}"
                ) from None
    builtin = {a.NAME for a in ADAPTERS}
    out: list[type[Adapter]] = []
    for adapter in found:
        if adapter.NAME in builtin:
            raise AdapterError(
                f"adapter {adapter.__qualname__}: NAME {adapter.NAME!r} is a built-in adapter's"
            )
        if adapter not in out:
            out.append(adapter)
    return tuple(out)


def _checked(spec: str, obj: object) -> type[Adapter]:
    if not (isinstance(obj, type) and issubclass(obj, Adapter)):
        raise AdapterError(f"adapter {spec!r}: not a subclass of compiler.adapters.base.Adapter")
    if not isinstance(getattr(obj, "NAME", None), str) or not obj.NAME:
        raise AdapterError(f"adapter {spec!r}: NAME must be a non-empty string")
    return obj
