"""What custom code may touch: modules, builtins, names and attributes.

One table serves both checks: the parse-time policy (``_policy``) refuses code that names
anything outside it, and the worker (``_restricted``) builds the only module objects and
builtins the code can reach from it, so a trick that fools the parser still finds nothing.

Each allowed module maps to a ``ModuleRule``: ``only`` (an explicit list of public names,
for modules with a dangerous corner) or ``deny`` (names removed from an otherwise public
module). Whatever the rule, names starting with ``_`` and attributes holding modules are
never exposed, except submodules that are themselves allowed (``numpy.random``). Modules
were picked because they compute and cannot reach files, processes, the network or code
evaluation: ``typing``/``dataclasses``/``string.Formatter``/``operator.attrgetter`` are out
because they evaluate strings or fetch attributes by name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALLOWED_MODULES",
    "FORBIDDEN_ATTRIBUTES",
    "FORBIDDEN_NAMES",
    "SAFE_BUILTIN_NAMES",
    "SAFE_DUNDER_METHODS",
    "SAFE_PRIVATE_ATTRIBUTES",
    "ModuleRule",
]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(frozen=True)
class ModuleRule:
    """Which public names of one module custom code gets, and why some are missing."""

    only: frozenset[str] | None = None
    deny: frozenset[str] = frozenset()
    reason: str = "not available"

    def allows(self, name: str) -> bool:
        if name.startswith("_") or name in self.deny:
            return False
        return self.only is None or name in self.only


_NUMPY_FILE_IO = _names("""
    load save savez savez_compressed loadtxt savetxt genfromtxt fromfile fromregex memmap
    DataSource recfromcsv recfromtxt info lookfor source show_config show_runtime
    get_include test from_dlpack add_docstring add_newdoc add_newdoc_ufunc ctypeslib
    lib core testing f2py distutils
""")
_TIME = _names("""
    time time_ns monotonic monotonic_ns perf_counter perf_counter_ns process_time
    process_time_ns sleep gmtime localtime mktime strftime strptime ctime asctime
    struct_time timezone altzone daylight tzname
""")
_STRING = _names("""
    ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits punctuation
    printable whitespace capwords
""")
_UUID = _names("UUID uuid3 uuid4 uuid5 NAMESPACE_DNS NAMESPACE_URL NAMESPACE_OID NAMESPACE_X500")
_PLAIN = """
    math cmath statistics random json datetime re collections collections.abc itertools
    functools heapq bisect decimal fractions numbers base64 binascii zlib struct textwrap
"""

ALLOWED_MODULES: dict[str, ModuleRule] = {
    **{name: ModuleRule() for name in _PLAIN.split()},
    "time": ModuleRule(only=_TIME, reason="not available (no clock setting, no tzset)"),
    "operator": ModuleRule(
        deny=_names("attrgetter methodcaller"),
        reason="not available (it fetches attributes by name)",
    ),
    "copy": ModuleRule(only=_names("copy deepcopy Error")),
    "hashlib": ModuleRule(deny=_names("file_digest")),
    "string": ModuleRule(
        only=_STRING,
        reason="not available (string.Formatter and Template fetch attributes by name)",
    ),
    "uuid": ModuleRule(only=_UUID, reason="not available (uuid1/getnode run system commands)"),
    "numpy": ModuleRule(deny=_NUMPY_FILE_IO, reason="not available (file, code or native I/O)"),
    "numpy.random": ModuleRule(deny=_names("test")),
    "numpy.linalg": ModuleRule(deny=_names("test")),
    "numpy.fft": ModuleRule(deny=_names("test")),
}

SAFE_BUILTIN_NAMES = _names("""
    abs all any ascii bin bool bytearray bytes callable chr classmethod complex dict divmod
    enumerate filter float format frozenset hash hex int isinstance issubclass iter len list
    map max min next object oct ord pow property range repr reversed round set slice sorted
    staticmethod str sum super tuple type zip NotImplemented Ellipsis
    ArithmeticError AssertionError AttributeError BaseException Exception FloatingPointError
    ImportError IndexError KeyError LookupError MemoryError ModuleNotFoundError NameError
    NotImplementedError OverflowError RecursionError RuntimeError StopIteration TimeoutError
    TypeError UnicodeDecodeError UnicodeEncodeError UnicodeError ValueError Warning
    ZeroDivisionError
""")
"""Builtins given as they are; ``print`` and ``hasattr`` are replaced, the rest is absent."""

FORBIDDEN_NAMES: dict[str, str] = {
    name: f"use of '{name}' is not allowed"
    for name in """
        open exec eval compile globals locals vars dir getattr setattr delattr input
        breakpoint help exit quit memoryview id __import__ __builtins__ __loader__ __spec__
        __build_class__
    """.split()
}

FORBIDDEN_ATTRIBUTES = _names("""
    gi_frame gi_code gi_yieldfrom cr_frame cr_code cr_await ag_frame ag_code ag_await
    f_back f_globals f_locals f_builtins f_code f_trace tb_frame tb_next co_code
    func_globals func_code
    ctypes tofile dump
    format_map
""")
"""Frames and code objects lead back to the worker's globals; numpy's ``ctypes`` gives raw
pointers and ``tofile``/``dump`` write files; ``format_map`` fetches attributes by name."""

SAFE_DUNDER_METHODS = _names("""
    __init__ __repr__ __str__ __eq__ __ne__ __lt__ __le__ __gt__ __ge__ __hash__ __bool__
    __len__ __iter__ __next__ __contains__ __getitem__ __setitem__ __delitem__ __add__
    __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __floordiv__ __mod__ __neg__
    __pos__ __abs__ __call__ __enter__ __exit__
""")
"""Dunder methods a user class may define (and reach through ``super()``)."""

SAFE_PRIVATE_ATTRIBUTES = _names("_asdict _replace _fields _make _field_defaults")
"""Public API of named tuples despite the leading underscore."""
