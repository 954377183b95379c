"""OS-level containment of a worker, applied to itself before it runs any custom code.

This is the layer that holds when the Python-level policy is fooled (an interpreter bug, a
native-memory trick through numpy): it limits what the *process* can do, whatever code it
runs. In order:

1. time zone pinned from ``/etc/localtime`` into ``TZ`` (that file is unreadable later);
2. as root: ``chroot`` into the worker's empty directory, then drop to ``nobody`` (no
   groups): no file of the node's is even visible, and root powers are gone;
3. ``PR_SET_NO_NEW_PRIVS`` and not dumpable (no ptrace by processes of the same user);
4. Landlock where the kernel has it (5.13+, any user): no filesystem access at all,
   no TCP bind/connect (ABI 4+), no signals to or abstract sockets of other processes (6+);
   then a thread that ends the worker when the node (its parent) is gone;
5. rlimits: no core files, no file writes (``RLIMIT_FSIZE`` 0), no new file descriptors
   at all (so no sockets), no new processes or threads (``RLIMIT_NPROC`` 0; ignored for
   root, which step 2 has already left), and an address-space cap counted on top of the
   worker's own size; the CPU-time soft limit is re-armed before each run (``SIGXCPU`` then
   ends the worker).

Each step that applies is named in the list returned, and the worker reports it to the node.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Iterable

__all__ = ["address_space_bytes", "arm_cpu_limit", "confine", "pin_time_zone"]

log = logging.getLogger(__name__)

_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_NOBODY = 65534


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _libc() -> ctypes.CDLL:
    # the interpreter links libc: dlopen(NULL) finds prctl/syscall without ldconfig runs
    return ctypes.CDLL(None, use_errno=True)


def pin_time_zone() -> None:
    """Keep local time right after the filesystem is gone: TZif v2+ files end with the
    zone as a POSIX ``TZ`` string, which needs no file."""
    if "TZ" in os.environ:
        return
    try:
        with open("/etc/localtime", "rb") as handle:
            data = handle.read(1 << 20)
    except OSError:
        return
    if data.startswith(b"TZif") and data.endswith(b"\n") and data[4:5] in (b"2", b"3", b"4"):
        footer = data[:-1].rsplit(b"\n", 1)[-1]
        if footer:
            os.environ["TZ"] = footer.decode("ascii", "replace")
            time.tzset()


def address_space_bytes() -> int:
    """The worker's current virtual size: the memory cap is counted on top of it."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def confine(root_dir: str, *, memory_bytes: int, keep_fds: Iterable[int]) -> list[str]:
    """Apply every layer this machine supports; the names of those applied."""
    applied: list[str] = []
    baseline = address_space_bytes()
    libc = _libc()
    if os.geteuid() == 0:
        os.chroot(root_dir)
        os.chdir("/")
        os.setgroups([])
        os.setgid(_NOBODY)
        os.setuid(_NOBODY)
        applied += ["chroot", "setuid-nobody"]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied.append("no-new-privs")
    libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    abi = _landlock(libc)
    if abi:
        applied.append(f"landlock-v{abi}")
    _watch_parent()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    nofile = max(keep_fds) + 1
    limits = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, nofile),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_AS, baseline + memory_bytes),
    ]
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    applied.append("rlimits")
    return applied


def _watch_parent() -> None:
    """End the worker when the node is gone, even in the middle of ``sleep``: a daemon
    thread, started after Landlock (which binds only threads created later) and before
    ``RLIMIT_NPROC`` forbids new threads."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(70)

    threading.Thread(target=watch, name="meshops-sandbox-parent-watch", daemon=True).start()


def _landlock(libc: ctypes.CDLL) -> int:
    """Deny all filesystem access (and TCP, and cross-domain signals, where known); the
    ABI version applied, or 0 when the kernel lacks Landlock."""
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    if abi < 1:
        return 0
    fs = (1 << 13) - 1
    for version, bit in ((2, 13), (3, 14), (5, 15)):
        if abi >= version:
            fs |= 1 << bit
    attr = _RulesetAttr(fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if fd < 0:
        log.warning("sandbox: landlock ruleset refused (errno %d)", ctypes.get_errno())
        return 0
    try:
        libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if syscall(
            ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)
        ):
            log.warning("sandbox: landlock restrict_self failed (errno %d)", ctypes.get_errno())
            return 0
    finally:
        os.close(fd)
    return int(abi)


def arm_cpu_limit(seconds: int) -> None:
    """Let the next run use ``seconds`` of CPU from now: past it, SIGXCPU ends the worker."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    target = int(used.ru_utime + used.ru_stime) + max(1, seconds) + 1
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (target, hard))
