"""The custom-code sandbox: results, policy, containment, limits and crashes.

Attacks are tried three ways: through a real worker (what a deployed plugin gets), against
the runtime layer alone (as if the parser had been fooled), and against the OS layer alone
(as if the Python-level sandbox had been escaped).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops.plugins.sandbox import (
    SUPPORTED_MEMBERS,
    CodePolicyError,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxResult,
    check_code,
    decode_code,
    encode_code,
)
from meshops.plugins.sandbox._api import PluginProxy
from meshops.plugins.sandbox._restricted import build_modules, make_builtins, make_import

SECRET = "0xSECRET-KEY-7f3a9c"
FAST = SandboxLimits(wall_s=2.0, memory_mib=256)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """One worker shared by the tests that do not kill it."""
    with Sandbox(FAST, name="test-shared") as box:
        yield box


@pytest.fixture
def own_sandbox() -> Iterator[Sandbox]:
    """A worker of its own, for tests that kill or exhaust it."""
    box = Sandbox(SandboxLimits(wall_s=1.0, memory_mib=256, cpu_s=1), name="test-own")
    try:
        yield box
    finally:
        box.close()
        assert box.pid is None


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "node-key.pem"
    path.write_text(f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n")
    return path


def run(box: Sandbox, source: str, **config: object) -> SandboxResult:
    return box.run(
        textwrap.dedent(source),
        config={k.upper(): v for k, v in config.items()},
        inputs=[{"TYPE": "STRUCT_DATA", "STRUCT_DATA": {"temp": 21.5}, "METADATA": {}}],
        context={"instance_id": "inst-1", "pipeline": "pipe-1", "node_alias": "node-a"},
    )


def assert_no_secret(result: SandboxResult) -> None:
    assert SECRET not in json.dumps(result.__dict__, default=repr)


# ---- normal runs ---------------------------------------------------------------------------


def test_code_returns_result_logs_and_payloads(sandbox: Sandbox) -> None:
    result = run(
        sandbox,
        """
        import numpy as np
        plugin.P("threshold", plugin.cfg_threshold)
        print("printed", 1)
        plugin.add_payload_by_fields(alert=True, value=np.float64(2.5))
        data = plugin.dataapi_struct_data()
        return {"hot": data["temp"] > plugin.cfg_threshold, "who": plugin.get_instance_id(),
                "arr": np.arange(3), "stream": plugin.get_stream_id(), "node": plugin.node_id}
        """,
        threshold=20,
    )
    assert result.error is None, result.error
    assert result.result == {
        "hot": True,
        "who": "inst-1",
        "arr": [0, 1, 2],
        "stream": "pipe-1",
        "node": "node-a",
    }
    assert result.logs == ["threshold 20", "printed 1"]
    assert result.payloads == [{"ALERT": True, "VALUE": 2.5}]
    assert not result.worker_restarted and result.duration_s > 0


def test_common_library_calls_work_in_the_confined_worker(sandbox: Sandbox) -> None:
    """Lazy imports inside numpy and the stdlib (ndarray.sum, percentile, strptime) must
    not need the filesystem, which the worker no longer has."""
    result = run(
        sandbox,
        """
        import numpy as np, datetime, statistics, json, re, collections
        a = np.arange(12, dtype=float).reshape(3, 4)
        return [a.sum(), a.std() > 3, np.percentile(a, 50), np.linalg.inv(np.eye(2) * 2),
                np.fft.fft([1, 0])[0].real, np.random.default_rng(0).integers(1, 2), str(a[0]),
                datetime.datetime.strptime("2024-01-02", "%Y-%m-%d").day, np.median(a),
                statistics.stdev([1, 2, 3]), json.loads("[1]"), re.findall("[0-9]", "a1"),
                collections.namedtuple("P", "x y")(1, 2)._asdict(), np.polyfit([0, 1], [1, 3], 1)]
        """,
    )
    assert result.error is None, result.error
    assert result.result[:4] == [66.0, True, 5.5, [[0.5, 0.0], [0.0, 0.5]]]
    assert result.result[7:9] == [2, 5.5] and result.result[12] == {"x": 1, "y": 2}


def test_code_without_return_gives_its_result_variable(sandbox: Sandbox) -> None:
    assert run(sandbox, "x = 40\nresult = x + 2").result == 42


def test_obj_cache_persists_between_runs_until_fresh_cache(sandbox: Sandbox) -> None:
    code = "plugin.obj_cache['n'] = plugin.obj_cache.get('n', 0) + 1\nreturn plugin.obj_cache['n']"
    first, second = run(sandbox, code).result, run(sandbox, code).result
    assert second == first + 1
    fresh = sandbox.run(code, config={}, inputs=[], context={}, fresh_cache=True)
    assert fresh.result == 1


def test_values_json_cannot_hold_come_back_converted(sandbox: Sandbox) -> None:
    result = run(
        sandbox,
        """
        import datetime
        class Thing:
            pass
        return {"when": datetime.date(2024, 1, 2), "set": {3}, "nan": float("nan"), "obj": Thing()}
        """,
    )
    assert result.result["when"] == "2024-01-02" and result.result["set"] == [3]
    assert result.result["nan"] is None and "Thing object" in result.result["obj"]


def test_unsupported_plugin_member_is_named(sandbox: Sandbox) -> None:
    error = run(sandbox, "return plugin.os_path").error
    assert error is not None
    assert "plugin.os_path is not supported by MeshOps custom code" in error
    assert all(hasattr(PluginProxy, name) for name in SUPPORTED_MEMBERS if name != "cfg_<key>")
    assert "config key 'NOPE' is not set" in str(run(sandbox, "return plugin.cfg_nope").error)


def test_runs_from_two_threads_are_serialised(sandbox: Sandbox) -> None:
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(run(sandbox, f"return {i}").result))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(results) == [0, 1, 2, 3]  # type: ignore[type-var]


# ---- errors with their line ----------------------------------------------------------------


def test_syntax_error_names_the_line(sandbox: Sandbox) -> None:
    error = run(sandbox, "x = 1\ny = (\n").error
    assert error is not None and error.startswith("syntax error at line 2")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("x = 1\0", "syntax error: source code string cannot contain null bytes"),
        ("x = " + "-" * 100_000 + "1", "custom code is nested too deeply to be checked"),
        ("x = " + "(" * 1000 + ")" * 1000, "syntax error at line 1: too many nested parentheses"),
    ],
)
def test_hostile_text_is_refused_without_hurting_the_node(source: str, error: str) -> None:
    with pytest.raises(CodePolicyError) as caught:
        check_code(source)
    assert str(caught.value) == error


def test_exception_names_the_line(sandbox: Sandbox) -> None:
    error = run(sandbox, "x = 1\n\nreturn x / 0").error
    assert error == "ZeroDivisionError: division by zero (line 3)"


def test_deep_recursion_is_an_error_and_the_worker_lives_on(sandbox: Sandbox) -> None:
    pid = sandbox.pid
    result = run(sandbox, "def f(n):\n    return f(n + 1)\nreturn f(0)")
    assert result.error is not None and result.error.startswith("RecursionError")
    assert run(sandbox, "return 'fine'").result == "fine" and sandbox.pid == pid


def test_result_over_the_reply_cap_is_refused(sandbox: Sandbox) -> None:
    result = run(sandbox, "return 'x' * (5 * 2**20)")
    assert result.result is None and result.error is not None
    assert result.error.startswith("result is too large")


# ---- policy: refused before anything runs --------------------------------------------------


REFUSED_MODULES = "os subprocess sys socket importlib ctypes pathlib io builtins shutil pickle"


@pytest.mark.parametrize("module", [*REFUSED_MODULES.split(), "marshal", "typing", "numpy.lib"])
def test_import_outside_the_allow_list_is_refused(sandbox: Sandbox, module: str) -> None:
    result = run(sandbox, f"import {module}")
    assert result.error is not None
    assert result.error.startswith(f"import of '{module}' is not allowed (line 1)")
    assert result.duration_s == 0.0  # refused by the node, never sent to the worker


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("from . import x", "relative imports are not allowed"),
        ("from math import *", "'from math import *' is not allowed"),
        ("x = ().__class__", "access to attribute '__class__' is not allowed"),
        ("x = plugin._config", "access to attribute '_config' is not allowed"),
        ("x = eval('1')", "use of 'eval' is not allowed"),
        ("x = compile('1', 'f', 'eval')", "use of 'compile' is not allowed"),
        ("x = globals()", "use of 'globals' is not allowed"),
        ("x = vars(plugin)", "use of 'vars' is not allowed"),
        ("setattr(plugin, 'x', 1)", "use of 'setattr' is not allowed"),
        ("breakpoint()", "use of 'breakpoint' is not allowed"),
        ("x = input()", "use of 'input' is not allowed"),
        ("x = __builtins__", "use of '__builtins__' is not allowed"),
        ("g = (i for i in [1])\nx = g.gi_frame", "access to attribute 'gi_frame'"),
        ("f = '{}'\nx = f.format(1)", "str.format is allowed only on a literal format string"),
        ("x = '{0.real}'.format(1)", "attribute lookups inside format strings"),
        ("class A:\n    __array_interface__ = {}", "name '__array_interface__' is not allowed"),
        ("class A:\n    def __del__(self): pass", "defining '__del__' is not allowed"),
        ("match 1:\n    case int(__class__=c): pass", "attribute '__class__' is not allowed"),
        ("import numpy as np\nx = np.zeros(2).ctypes", "attribute 'ctypes' is not allowed"),
        ("import numpy as np\nnp.zeros(2).tofile('f')", "attribute 'tofile' is not allowed"),
        ("import numpy as np\nx = np.ndarray((2,), object)", "constructing numpy.ndarray"),
        ("from numpy import memmap", "numpy.memmap is not available (file, code or native"),
        ("import time\ntime.clock_settime(0, 0.0)", "time.clock_settime is not available"),
    ],
)
def test_policy_refusals_name_the_construct(source: str, reason: str) -> None:
    with pytest.raises(CodePolicyError, match="line") as caught:
        check_code(source)
    assert reason in str(caught.value)


def test_ordinary_python_passes_the_policy() -> None:
    check_code(
        textwrap.dedent(
            """
            import numpy.random as npr
            from collections import defaultdict
            class Box:
                def __init__(self, v):
                    super().__init__()
                    self.v = v
                def __repr__(self):
                    return f"Box({self.v!r})"
            counts = defaultdict(int)
            values = [Box(x).v for x in npr.rand(3)]
            return "{:.2f} {}".format(sum(values), counts["a"])
            """
        )
    )


# ---- containment: the node's key file and environment stay out of reach -------------------

ATTACKS = {
    "open": "return open(plugin.cfg_key).read()",
    "pathlib": "from pathlib import Path\nreturn Path(plugin.cfg_key).read_text()",
    "os": "import os\nreturn os.popen('cat ' + plugin.cfg_key).read()",
    "dunder-import": "return __import__('os').system('cat ' + plugin.cfg_key)",
    "np.loadtxt": "import numpy as np\nreturn np.loadtxt(plugin.cfg_key, dtype=str)",
    "np.fromfile": "return plugin.np.fromfile(plugin.cfg_key, dtype='uint8')",
    "np.genfromtxt": "import numpy\nreturn numpy.genfromtxt(plugin.cfg_key, dtype=str)",
    "np.load": "import numpy as np\nreturn np.load(plugin.cfg_key)",
    "np.memmap": "import numpy as np\nreturn np.memmap(plugin.cfg_key)",
    "np.DataSource": "import numpy as np\nreturn np.DataSource().open(plugin.cfg_key).read()",
    "np.lib.npyio": "import numpy as np\nreturn np.lib.npyio.loadtxt(plugin.cfg_key)",
    "np alias (runtime)": "m = [plugin.np][0]\nreturn m.fromfile(plugin.cfg_key, dtype='uint8')",
    "module global (runtime)": "import statistics\nreturn statistics.sys.modules['os']",
    "json submodule (runtime)": "import json\nreturn json.decoder.sys",
    "private module global": "import random\nreturn random._os.popen('id').read()",
    "subclasses": "return [c for c in ().__class__.__base__.__subclasses__()]",
    "getattr": "return getattr(plugin, '_config')",
    "func globals": "f = lambda: 0\nreturn f.__globals__",
    "frames": "g = (i for i in [1])\nreturn g.gi_frame.f_back.f_globals",
    "format string": "return '{0.__globals__}'.format(lambda: 0)",
    "builtins via dict": "return plugin.__dict__",
}


@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
def test_key_file_cannot_be_read(sandbox: Sandbox, key_file: Path, source: str) -> None:
    result = run(sandbox, source, key=str(key_file))
    assert result.error is not None, result.result
    assert_no_secret(result)


def test_runtime_layer_holds_when_the_parser_is_fooled() -> None:
    modules = build_modules()
    numpy = modules["numpy"]
    for name in "load save loadtxt fromfile genfromtxt memmap DataSource lib ctypeslib".split():
        assert not hasattr(numpy, name), name
    with pytest.raises(AttributeError, match="numpy.load is not available"):
        numpy.load  # noqa: B018
    assert numpy.random.default_rng(1).integers(10) >= 0 and numpy.linalg.norm([3, 4]) == 5
    assert not hasattr(modules["random"], "_os") and not hasattr(modules["statistics"], "sys")
    guarded = make_import(modules)
    for name in ("os", "sys", "subprocess", "numpy.lib", "ctypes"):
        with pytest.raises(ImportError, match=f"import of '{name}' is not allowed"):
            guarded(name)
    assert guarded("numpy.random", fromlist=("rand",)) is numpy.random
    # C code importing through PyImport_Import (a list fromlist) passes, but gets nothing
    assert guarded("os", fromlist=[]) is None
    table = make_builtins(modules, print)
    for name in ("open", "eval", "exec", "compile", "getattr", "globals", "vars", "input"):
        assert name not in table
    with pytest.raises(AttributeError, match="not allowed"):
        table["hasattr"](1, "__class__")


def test_worker_gets_no_environment_files_or_privileges(
    key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHOPS_TEST_TOKEN", SECRET)
    with key_file.open(), Sandbox(FAST, name="test-env") as box:  # a key file the node holds
        assert run(box, "return 1").result == 1
        proc = Path(f"/proc/{box.pid}")
        if not os.access(proc / "environ", os.R_OK):
            pytest.skip("the worker is not dumpable: only root may look into its /proc")
        assert SECRET not in (proc / "environ").read_bytes().decode(errors="replace")
        targets = [os.readlink(proc / "fd" / fd) for fd in os.listdir(proc / "fd")]
        assert sorted(targets)[:3] == ["/dev/null"] * 3  # 0-2; then the two protocol pipes
        assert len(targets) == 5 and all(t.startswith("pipe:") for t in sorted(targets)[3:])
        workdir = Path(os.readlink(proc / "cwd"))
        assert workdir.name.startswith("meshops-sandbox-") and not any(workdir.iterdir())
        if os.geteuid() == 0:
            uid_line = next(
                line for line in (proc / "status").read_text().splitlines() if line[:4] == "Uid:"
            )
            assert uid_line.split()[1:] == ["65534"] * 4 and "chroot" in box.isolation
    assert not workdir.exists()


_ESCAPED = """
import errno, json, os, socket, sys
from meshops.plugins.sandbox._isolation import confine
spare = int(sys.argv[3])  # 0: as the worker (no new descriptors); 1: room for a few
keep = (0, 1, 2, 9) if spare else (0, 1, 2)
outcome = {"applied": confine(sys.argv[1], memory_bytes=2**28, keep_fds=keep)}
for name, attempt in [
    ("read", lambda: open(sys.argv[2]).read()),
    ("list", lambda: os.listdir(os.path.dirname(sys.argv[2]))),
    ("write", lambda: open("/tmp/escaped", "w").write("x")),
    ("socket", lambda: socket.socket().connect(("127.0.0.1", 9))),
    ("fork", lambda: os.fork()),
]:
    try:
        outcome[name] = "ALLOWED: " + str(attempt())
    except OSError as exc:
        outcome[name] = errno.errorcode.get(exc.errno, str(exc))
print(json.dumps(outcome))
"""


def _escaped(tmp_path: Path, key_file: Path, spare: int) -> dict[str, Any]:
    jail = tmp_path / f"jail{spare}"
    jail.mkdir()
    done = subprocess.run(
        [sys.executable, "-I", "-c", _ESCAPED, str(jail), str(key_file), str(spare)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=jail,
        env={"PATH": os.defpath},
    )
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    return dict(json.loads(done.stdout))


def test_os_layer_holds_when_python_is_escaped(tmp_path: Path, key_file: Path) -> None:
    """Full Python (os, open, socket) after ``confine``: the worker's situation once someone
    breaks out of the restricted interpreter. As the worker runs, no descriptor can be made;
    given room for some, the filesystem is still gone (chroot or Landlock)."""
    tight = _escaped(tmp_path, key_file, 0)
    assert tight["read"] == tight["write"] == tight["socket"] == "EMFILE"
    assert tight["fork"] == "EAGAIN"
    roomy = _escaped(tmp_path, key_file, 1)
    applied = [str(layer) for layer in roomy["applied"]]
    if not {"chroot", "landlock"} & {layer.split("-v")[0] for layer in applied}:
        pytest.skip(f"neither root nor Landlock here: {applied}")
    assert roomy["read"] in {"EACCES", "ENOENT"} and roomy["list"] in {"EACCES", "ENOENT"}
    assert roomy["write"] in {"EACCES", "ENOENT"} and roomy["fork"] == "EAGAIN"
    if any(layer.startswith("landlock-v") and int(layer[10:]) >= 4 for layer in applied):
        assert roomy["socket"] == "EACCES"  # Landlock 4+ denies TCP connect


# ---- limits and crashes --------------------------------------------------------------------


@pytest.mark.slow
def test_wall_clock_limit_kills_the_worker_and_the_next_run_works(own_sandbox: Sandbox) -> None:
    run(own_sandbox, "plugin.obj_cache['x'] = 1")
    first_pid = own_sandbox.pid
    started = time.monotonic()
    result = run(own_sandbox, "while True:\n    pass")
    assert time.monotonic() - started < 4
    assert result.error == "wall-clock limit of 1 s exceeded; worker restarted"
    assert result.worker_restarted and "obj_cache starts empty" in result.warnings[0]
    after = run(own_sandbox, "return plugin.obj_cache.get('x', 'empty')")
    assert after.result == "empty" and not after.worker_restarted
    assert own_sandbox.pid not in (None, first_pid)


@pytest.mark.slow
def test_cpu_limit_ends_the_worker() -> None:
    limits = SandboxLimits(wall_s=10.0, cpu_s=1, memory_mib=256)
    with Sandbox(limits, name="test-cpu") as box:
        result = run(box, "x = 0\nwhile True:\n    x += 1")
        assert result.error == "CPU-time limit of 1 s exceeded; worker restarted"
        assert run(box, "return 2").result == 2


@pytest.mark.parametrize(
    "source",
    ["x = bytearray(10 * 2**30)", "import numpy as np\nx = np.ones(10**10)", "x = [0] * (10**10)"],
)
def test_memory_limit_is_reported_and_the_worker_lives_on(
    own_sandbox: Sandbox, source: str
) -> None:
    result = run(own_sandbox, source)
    assert result.error is not None and result.error.startswith("memory limit of 256 MiB exceeded")
    assert run(own_sandbox, "return sum(range(10))").result == 45


BUSY = "t = plugin.time()\nwhile plugin.time() - t < 1.5:\n    pass"


def wait_until_busy(pid: int) -> None:
    """Until the worker has burnt some CPU, i.e. the custom code is running."""

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    start, deadline = cpu_ticks(), time.monotonic() + 5
    while cpu_ticks() < start + 10 and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.slow
def test_worker_crash_mid_run_is_reported_and_the_next_run_works(own_sandbox: Sandbox) -> None:
    run(own_sandbox, "return 0")
    pid = own_sandbox.pid
    assert pid is not None
    results: list[SandboxResult] = []
    runner = threading.Thread(target=lambda: results.append(run(own_sandbox, BUSY)))
    runner.start()
    wait_until_busy(pid)
    os.kill(pid, signal.SIGSEGV)  # what a segfault in native code looks like to the node
    runner.join(timeout=10)
    assert results[0].error == "worker crashed (signal 11, SIGSEGV); worker restarted"
    assert run(own_sandbox, "return 'alive'").result == "alive"


def test_worker_killed_between_runs_is_replaced(own_sandbox: Sandbox) -> None:
    run(own_sandbox, "plugin.obj_cache['k'] = 1")
    os.kill(own_sandbox.pid or 0, signal.SIGKILL)
    time.sleep(0.1)
    result = run(own_sandbox, "return plugin.obj_cache.get('k')")
    assert result.error is None and result.result is None and result.worker_restarted
    assert result.warnings[0].startswith("worker crashed (signal 9, SIGKILL)")


_ORPHANING_NODE = """
import os, sys, threading, time
from meshops.plugins.sandbox import Sandbox, SandboxLimits
box = Sandbox(SandboxLimits(wall_s=60), name="orphan")
box.run("return 1", config={}, inputs=[], context={})
print(box.pid, box._workdir, flush=True)
threading.Thread(target=lambda: box.run("plugin.sleep(60)", config={}, inputs=[], context={}),
                 daemon=True).start()
time.sleep(0.3)
os._exit(0)  # the node dies hard, mid-run, without closing its sandbox
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.slow
def test_worker_does_not_outlive_a_crashed_node() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ORPHANING_NODE], capture_output=True, text=True, timeout=30
    )
    pid, workdir = done.stdout.split()
    deadline = time.monotonic() + 5
    while not _gone(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(int(pid))
    os.rmdir(workdir)  # the dead node could not remove it


def test_close_stops_a_run_and_refuses_more() -> None:
    box = Sandbox(FAST, name="test-close")
    run(box, "return 0")
    pid = box.pid
    results: list[SandboxResult] = []
    assert pid is not None
    runner = threading.Thread(target=lambda: results.append(run(box, BUSY)))
    runner.start()
    wait_until_busy(pid)
    box.close()
    runner.join(timeout=5)
    assert not runner.is_alive() and results[0].error is not None
    assert results[0].error.endswith("the sandbox was closed")
    assert box.pid is None and pid is not None and not Path(f"/proc/{pid}").exists()
    box.close()
    with pytest.raises(SandboxError, match="closed"):
        run(box, "return 1")


# ---- the CODE wire format ------------------------------------------------------------------


def test_decode_code_round_trip_and_clear_errors() -> None:
    assert decode_code(encode_code("return 'ț'\n")) == "return 'ț'\n"
    cases = {
        "": "CODE is empty",
        "not base64!": "CODE is not valid base64",
        "aGVsbG8=": "CODE is not zlib-compressed data",
        base64.b64encode(zlib.compress(b"x = 1" * 9)[:-3]).decode(): "the stream is truncated",
    }
    for value, message in cases.items():
        with pytest.raises(CodePolicyError, match=message):
            decode_code(value)
    with pytest.raises(CodePolicyError, match="CODE must be a string"):
        decode_code(None)  # type: ignore[arg-type]
    latin = base64.b64encode(zlib.compress("é".encode("latin-1"))).decode()
    with pytest.raises(CodePolicyError, match="CODE is not UTF-8 text"):
        decode_code(latin)
    bomb = base64.b64encode(zlib.compress(b" " * (2**24), 9)).decode()
    with pytest.raises(CodePolicyError, match="larger than 262144 bytes"):
        decode_code(bomb)
