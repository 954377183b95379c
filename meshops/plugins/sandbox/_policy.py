"""Parse-time checking of custom code.

The SDK sends the *body* of a function of ``plugin`` (see ``_codec``). ``prepare`` parses
it, walks the tree against the allow-list, and compiles the checked tree itself (never the
text again, so what runs is what was checked). Code with a top-level ``return`` becomes
``def __custom_fn(plugin): <body>`` by moving the parsed body into a function node, so
line numbers stay those of the user's text; other code runs as a module and its result is
the first of ``__result``/``_result``/``result`` it sets, as in the reference. This check
is the first layer only: the worker's restricted builtins and modules, then the process
and OS limits, hold when it is fooled.
"""

from __future__ import annotations

import ast
import string
from dataclasses import dataclass
from types import CodeType
from typing import cast

from meshops.plugins.sandbox._allowlist import (
    ALLOWED_MODULES,
    FORBIDDEN_ATTRIBUTES,
    FORBIDDEN_NAMES,
    SAFE_DUNDER_METHODS,
    SAFE_PRIVATE_ATTRIBUTES,
)
from meshops.plugins.sandbox._codec import MAX_SOURCE_BYTES
from meshops.plugins.sandbox._errors import CodePolicyError

__all__ = [
    "CODE_FILENAME",
    "FUNCTION_NAME",
    "RESULT_VARS",
    "PreparedCode",
    "check_code",
    "prepare",
]

CODE_FILENAME = "<custom code>"
FUNCTION_NAME = "__custom_fn"
RESULT_VARS = ("__result", "_result", "result")
_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_MODULES))
_PLUGIN_MODULES = {"np": "numpy", "json": "json", "re": "re", "math": "math"}


@dataclass(frozen=True)
class PreparedCode:
    """Checked, compiled custom code. ``wrapped``: it defines ``FUNCTION_NAME(plugin)``,
    which the runner calls; otherwise the runner reads ``RESULT_VARS`` after running it."""

    source: str
    code: CodeType
    wrapped: bool


def check_code(source: str, *, max_bytes: int = MAX_SOURCE_BYTES) -> None:
    """Raise CodePolicyError when ``source`` would be refused; return when it may run."""
    prepare(source, max_bytes=max_bytes)


def prepare(source: str, *, max_bytes: int = MAX_SOURCE_BYTES) -> PreparedCode:
    """Parse, check and compile ``source``; CodePolicyError names the first problem."""
    if not isinstance(source, str):
        raise CodePolicyError(f"custom code must be text, got {type(source).__name__}")
    if len(source.encode("utf-8", "surrogatepass")) > max_bytes:
        raise CodePolicyError(f"custom code is larger than {max_bytes} bytes")
    try:
        tree = ast.parse(source, filename=CODE_FILENAME)
        checker = _Checker()
        checker.visit(tree)
    except SyntaxError as exc:
        raise _syntax_error(exc) from exc
    except (RecursionError, MemoryError) as exc:
        # a hostile text can be nested deeper than the parser or the walk can follow
        raise CodePolicyError("custom code is nested too deeply to be checked") from exc
    if checker.problems:
        line, _, message, hint = min(checker.problems)
        more = len(checker.problems) - 1
        suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more else ""
        raise CodePolicyError(f"{message} (line {line}){suffix}{hint}", line=line)
    wrapped = _has_top_level_return(tree)
    if wrapped:
        tree = _wrap_in_function(tree)
    try:
        code = compile(tree, CODE_FILENAME, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise _syntax_error(exc) from exc
    except (RecursionError, MemoryError) as exc:
        raise CodePolicyError("custom code is nested too deeply to be compiled") from exc
    return PreparedCode(source=source, code=code, wrapped=wrapped)


def _syntax_error(exc: SyntaxError) -> CodePolicyError:
    where = f" at line {exc.lineno}" if exc.lineno else ""
    return CodePolicyError(f"syntax error{where}: {exc.msg}", line=exc.lineno)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


class _Checker(ast.NodeVisitor):
    """Collects ``(line, column, message, hint)`` for every construct the policy refuses."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, int, str, str]] = []
        self.modules = dict(_PLUGIN_MODULES)
        """Names bound to allowed modules (``np`` -> ``numpy``), to name missing members."""

    def _refuse(self, node: ast.AST, message: str, hint: str = "") -> None:
        where = (getattr(node, "lineno", 0), getattr(node, "end_col_offset", 0) or 0)
        self.problems.append((*where, message, hint))

    def _check_binding(self, node: ast.AST, name: str | None) -> None:
        if name and (_is_dunder(name) or name in FORBIDDEN_NAMES):
            self._refuse(node, f"name '{name}' is not allowed")

    def _check_attribute(self, node: ast.AST, attr: str, owner: ast.AST | None) -> None:
        via_super = (
            isinstance(owner, ast.Call)
            and isinstance(owner.func, ast.Name)
            and owner.func.id == "super"
            and attr in SAFE_DUNDER_METHODS
        )
        if attr.startswith("_") and not via_super and attr not in SAFE_PRIVATE_ATTRIBUTES:
            self._refuse(node, f"access to attribute '{attr}' is not allowed (private name)")
        elif attr in FORBIDDEN_ATTRIBUTES:
            self._refuse(node, f"access to attribute '{attr}' is not allowed")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_MODULES:
                self._refuse_import(node, alias.name)
            elif alias.asname:
                self.modules[alias.asname] = alias.name
            else:
                self.modules.setdefault(alias.name, alias.name)
            self._check_binding(node, alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level:
            self._refuse(node, "relative imports are not allowed")
            return
        if module not in ALLOWED_MODULES:
            self._refuse_import(node, module)
            return
        rule = ALLOWED_MODULES[module]
        for alias in node.names:
            if alias.name == "*":
                self._refuse(node, f"'from {module} import *' is not allowed")
            elif f"{module}.{alias.name}" not in ALLOWED_MODULES and not rule.allows(alias.name):
                self._refuse(node, f"{module}.{alias.name} is {rule.reason}")
            self._check_binding(node, alias.asname)

    def _refuse_import(self, node: ast.AST, name: str) -> None:
        self._refuse(node, f"import of '{name}' is not allowed", f"; allowed: {_ALLOWED_TEXT}")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in FORBIDDEN_NAMES:
            self._refuse(node, FORBIDDEN_NAMES[node.id])
        elif _is_dunder(node.id):
            self._refuse(node, f"name '{node.id}' is not allowed")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._check_attribute(node, node.attr, node.value)
        self._check_module_member(node)
        if node.attr == "format":
            self._check_format_receiver(node)
        self.generic_visit(node)

    def _check_module_member(self, node: ast.Attribute) -> None:
        """``np.load`` / ``plugin.np.load``: refused here already, with the reason."""
        owner = node.value
        if isinstance(owner, ast.Name):
            module = self.modules.get(owner.id)
        elif isinstance(owner, ast.Attribute) and isinstance(owner.value, ast.Name):
            module = _PLUGIN_MODULES.get(owner.attr) if owner.value.id == "plugin" else None
        else:
            module = None
        rule = ALLOWED_MODULES.get(module or "")
        if module and rule and f"{module}.{node.attr}" not in ALLOWED_MODULES:
            if not rule.allows(node.attr) and not node.attr.startswith("_"):
                self._refuse(node, f"{module}.{node.attr} is {rule.reason}")

    def _check_format_receiver(self, node: ast.Attribute) -> None:
        receiver = node.value
        if not (isinstance(receiver, ast.Constant) and isinstance(receiver.value, str)):
            self._refuse(node, "str.format is allowed only on a literal format string")
            return
        try:
            fields = _format_fields(receiver.value)
        except ValueError:
            self._refuse(node, "invalid format string")
            return
        if any("." in field for field in fields):
            self._refuse(node, "attribute lookups inside format strings are not allowed")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == "ndarray":
            self._refuse(
                node,
                "constructing numpy.ndarray directly is not allowed; "
                "use numpy.array, zeros or empty",
            )
        self.generic_visit(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if _is_dunder(node.name) and node.name not in SAFE_DUNDER_METHODS:
            self._refuse(node, f"defining '{node.name}' is not allowed")
        elif node.name in FORBIDDEN_NAMES:
            self._refuse(node, f"name '{node.name}' is not allowed")
        self.generic_visit(node)

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._check_binding(node, node.name)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_binding(node, node.arg)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._check_binding(node, node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            self._check_binding(node, name)

    visit_Nonlocal = visit_Global  # type: ignore[assignment]

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:
            self._check_attribute(node, attr, None)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        self._check_binding(node, node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        self._check_binding(node, node.name)


def _format_fields(text: str) -> list[str]:
    """Every replacement-field name in a format string, nested specs included."""
    fields: list[str] = []
    for _, field, spec, _ in string.Formatter().parse(text):
        if field is not None:
            fields.append(field)
        if spec:
            fields.extend(_format_fields(spec))
    return fields


def _has_top_level_return(tree: ast.Module) -> bool:
    """A ``return`` outside any def/lambda/class: the body must become a function."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Return):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return False


def _wrap_in_function(tree: ast.Module) -> ast.Module:
    """``def __custom_fn(plugin): <body>``; the body keeps its own line numbers."""
    wrapper = ast.parse(f"def {FUNCTION_NAME}(plugin):\n    pass\n")
    function = cast(ast.FunctionDef, wrapper.body[0])
    function.body = tree.body or function.body
    return ast.fix_missing_locations(wrapper)
