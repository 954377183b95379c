"""Run untrusted custom code (``CUSTOM_EXEC_01``, ``REST_CUSTOM_EXEC_01``) outside the node.

The reference node ``exec``s custom code inside its own process after a text deny-list scan.
MeshOps runs it in a separate worker process per plugin instance, behind three layers:

1. **Parse-time policy** (``_policy``, ``_allowlist``): the code is parsed with ``ast`` and
   refused, with its line, when it imports a module outside the allow-list, touches a
   name starting with ``_`` as an attribute or a dunder name, calls ``open``/``exec``/
   ``eval``/``compile``/``getattr``/``globals``/..., walks frames (``gi_frame``,
   ``f_back``...), or uses ``str.format`` on a non-literal string. The checked tree is
   what gets compiled.
2. **Restricted runtime** (``_restricted``, ``_api``): the code runs with curated
   ``__builtins__``, a guarded ``__import__`` that hands out filtered *copies* of allowed
   modules (public names only, no module attributes, numpy without any file I/O:
   ``load``/``save*``/``*txt``/``fromfile``/``memmap``/``DataSource``/``ctypeslib``/``lib``),
   and a ``plugin`` proxy holding nothing privileged.
3. **Process containment** (``_isolation``, ``_sandbox``): a fresh interpreter (``-I``)
   with a clean environment, no inherited descriptors, an empty working directory; as
   root it chroots there and becomes ``nobody``; Landlock (Linux 5.13+) denies all file
   access, TCP and signals; rlimits forbid file writes, new descriptors (so sockets), new
   processes and core dumps, and cap address space and CPU time per run; the node kills
   it at the wall-clock limit. Results come back as capped JSON, never pickle.

Threat model: custom code comes from a party the node's owner allowed to deploy, but may
be buggy or hostile. It must not read the node's keys, files or environment, reach the
network, affect other instances or take the node down; a crash or a limit hit is an error
in the result, and the next run gets a fresh worker.

Not protected against (a sandbox inside CPython is never perfect; layer 3 is the real
containment): native memory corruption reachable through allowed libraries (e.g. numpy
object arrays over raw buffers, or an interpreter bug) that gives arbitrary code execution
*inside the worker*. Such code is still confined by layer 3, but on a kernel without
Landlock and a node not running as root, the filesystem is guarded only by "no free file
descriptor": it could close one of its own and then read what the node's user can read
(writes, new processes and, with Landlock 4+, TCP stay blocked). Run the node as root (the
worker then chroots and drops to ``nobody``) or on Linux 5.13+ for real file isolation;
``Sandbox.isolation`` lists what applied. Side channels, and denial of service within the
limits (CPU up to wall clock, per run), are not addressed. ``plugin.obj_cache`` is lost
whenever a worker is replaced; results say so.
"""

from meshops.plugins.sandbox._allowlist import ALLOWED_MODULES
from meshops.plugins.sandbox._api import SUPPORTED_MEMBERS
from meshops.plugins.sandbox._codec import decode_code, encode_code
from meshops.plugins.sandbox._errors import CodePolicyError, SandboxError
from meshops.plugins.sandbox._policy import check_code
from meshops.plugins.sandbox._sandbox import Sandbox
from meshops.plugins.sandbox._types import DEFAULT_LIMITS, SandboxLimits, SandboxResult

__all__ = [
    "ALLOWED_MODULES",
    "DEFAULT_LIMITS",
    "SUPPORTED_MEMBERS",
    "CodePolicyError",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "SandboxResult",
    "check_code",
    "decode_code",
    "encode_code",
]
