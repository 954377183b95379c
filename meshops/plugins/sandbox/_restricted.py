"""The only modules and builtins custom code can reach, built once in the worker.

Custom code never gets a real module object: a real module's globals lead to ``os`` and
``sys`` (``random._os``, ``statistics.sys``, ``numpy.lib``...). Each allowed module is
copied into a fresh module holding just the names its ``ModuleRule`` allows, minus any
attribute that is itself a module (allowed submodules get their own filtered copy). The
guarded ``__import__`` hands out these copies and refuses every other name, so an import
that slipped past the parse-time check still finds nothing. Missing names raise an
AttributeError saying why, rather than Python's bare "has no attribute".
"""

from __future__ import annotations

import builtins
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from meshops.plugins.sandbox._allowlist import (
    ALLOWED_MODULES,
    FORBIDDEN_ATTRIBUTES,
    SAFE_BUILTIN_NAMES,
    ModuleRule,
)

__all__ = ["build_modules", "make_builtins", "make_import"]

log = logging.getLogger(__name__)


def build_modules() -> dict[str, ModuleType]:
    """Filtered copies of every allowed module that imports here, by dotted name."""
    real: dict[str, ModuleType] = {}
    for name in sorted(ALLOWED_MODULES):
        try:
            real[name] = importlib.import_module(name)
        except ImportError as exc:
            log.warning("sandbox: allowed module %s is not importable: %s", name, exc)
    filtered: dict[str, ModuleType] = {}
    for name in sorted(real, key=lambda n: -n.count(".")):
        filtered[name] = _filtered_copy(name, real[name], ALLOWED_MODULES[name], filtered)
    return filtered


def _filtered_copy(
    name: str, module: ModuleType, rule: ModuleRule, done: Mapping[str, ModuleType]
) -> ModuleType:
    # vars(), not dir(): dir() would trigger numpy's lazy imports of testing, f2py, ...
    copy = ModuleType(name, getattr(module, "__doc__", None))
    for attr, value in list(vars(module).items()):
        child = f"{name}.{attr}"
        if child in done:
            setattr(copy, attr, done[child])
        elif rule.allows(attr) and not isinstance(value, ModuleType):
            setattr(copy, attr, value)
    copy.__getattr__ = _missing_attribute(name, rule)  # type: ignore[attr-defined]
    return copy


def _missing_attribute(module: str, rule: ModuleRule) -> Callable[[str], Any]:
    def missing(attr: str) -> Any:
        raise AttributeError(f"{module}.{attr} is {rule.reason} in MeshOps custom code")

    return missing


def make_import(modules: Mapping[str, ModuleType]) -> Callable[..., ModuleType | None]:
    """``__import__`` for custom code: filtered copies of allowed modules, nothing else."""
    allowed_text = ", ".join(sorted(modules))

    def guarded_import(
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType | None:
        if level:
            raise ImportError("relative imports are not allowed in MeshOps custom code")
        if name not in modules and type(fromlist) is list and name in sys.modules:
            # C code (numpy's ndarray.sum, datetime.strptime) importing through
            # PyImport_Import, which calls the running frame's __import__ with a *list*
            # (the compiler's import statements pass a tuple or None) only for its side
            # effect, then reads sys.modules itself: let it through, hand over nothing
            return None
        if name not in modules:
            raise ImportError(
                f"import of '{name}' is not allowed; allowed modules: {allowed_text}",
                name=name,
            )
        return modules[name] if fromlist else modules[name.partition(".")[0]]

    return guarded_import


def _safe_hasattr(obj: Any, name: str) -> bool:
    if not isinstance(name, str):
        raise TypeError("hasattr(): attribute name must be a string")
    if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
        raise AttributeError(f"hasattr() with '{name}' is not allowed in MeshOps custom code")
    return hasattr(obj, name)


def make_builtins(
    modules: Mapping[str, ModuleType], print_function: Callable[..., None]
) -> dict[str, Any]:
    """The ``__builtins__`` of custom code: safe builtins, a collecting ``print``, the
    guarded import, and ``__build_class__`` (needed by ``class`` statements)."""
    table = {n: getattr(builtins, n) for n in SAFE_BUILTIN_NAMES if hasattr(builtins, n)}
    table["print"] = print_function
    table["hasattr"] = _safe_hasattr
    table["__build_class__"] = builtins.__build_class__
    table["__import__"] = make_import(modules)
    return table
