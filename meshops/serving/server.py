"""The model server process: load one model, then batch and answer requests until told to stop.

Runs in its own process (``python -m meshops.serving.server FD``) so that a crash, a leak
or a stuck native library in a model never takes the node down. It talks to the node over
one socket pair inherited as ``FD`` (a ``multiprocessing`` connection: pickled messages):

    node -> server   ("load", manifest, files, params, options)   first, once
                     ("infer", request_id, inputs)   inputs: values or ShmRef
                     ("stop",)
    server -> node   ("ready", info) | ("load_error", message)
                     ("done", request_id, results, batch_ids)
                     ("error", request_id, message)

Dynamic batching: requests queue up; a batch is cut when it holds ``max_batch`` inputs or
``max_wait_ms`` after its first input arrived, whichever comes first. A request larger than
``max_batch`` is split over several batches; a batch mixes the inputs of every instance
that asked, and each request gets back exactly its own results, in order.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from meshops.serving.shm import ShmReader

__all__ = ["serve"]

log = logging.getLogger(__name__)


@dataclass
class _Request:
    id: int
    inputs: list[Any]
    next: int = 0
    results: list[Any] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    failed: str | None = None


class _Server:
    def __init__(self, conn: Connection, model: Any, max_batch: int, max_wait_s: float) -> None:
        self.conn = conn
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.pending: collections.deque[_Request] = collections.deque()
        self.reader = ShmReader()
        self.batch_no = 0
        self.stopping = False

    def queued(self) -> int:
        return sum(len(r.inputs) - r.next for r in self.pending)

    def receive(self, message: tuple) -> None:
        kind = message[0]
        if kind == "stop":
            self.stopping = True
        elif kind == "infer":
            _, request_id, inputs = message
            try:
                request = _Request(request_id, self.reader.unpack(inputs))
            except Exception as exc:  # a block that vanished, a malformed reference
                self.conn.send(("error", request_id, f"cannot read the inputs: {exc}"))
                return
            if request.inputs:
                self.pending.append(request)
            else:
                self.conn.send(("done", request_id, [], []))
        else:
            log.warning("model server: unknown message %r", kind)

    def run(self) -> None:
        while not self.stopping:
            if not self.pending:
                self.receive(self.conn.recv())
                continue
            deadline = time.monotonic() + self.max_wait_s
            while self.queued() < self.max_batch and not self.stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.conn.poll(remaining):
                    break
                self.receive(self.conn.recv())
            while self.conn.poll(0) and not self.stopping:  # whatever else already arrived
                self.receive(self.conn.recv())
            if self.pending:
                self.run_batch()
            if not self.pending:
                self.reader.trim()  # no array points into a block now: safe to unmap

    def run_batch(self) -> None:
        segments: list[tuple[_Request, int, int]] = []
        room = self.max_batch
        for request in self.pending:
            if room == 0:
                break
            take = min(room, len(request.inputs) - request.next)
            segments.append((request, request.next, request.next + take))
            request.next += take
            room -= take
        inputs = [x for request, start, end in segments for x in request.inputs[start:end]]
        self.batch_no += 1
        try:
            outputs = self.model.predict(inputs)
            if len(outputs) != len(inputs):
                raise RuntimeError(f"the model gave {len(outputs)} outputs for {len(inputs)}")
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            for request, _, _ in segments:
                request.failed = request.failed or message
        else:
            position = 0
            for request, start, end in segments:
                request.results.extend(outputs[position : position + end - start])
                request.batches.append(self.batch_no)
                position += end - start
        del inputs
        while self.pending and (
            self.pending[0].next == len(self.pending[0].inputs) or self.pending[0].failed
        ):
            self.answer(self.pending.popleft())
        for request in [r for r in self.pending if r.failed]:
            self.pending.remove(request)
            self.answer(request)

    def answer(self, request: _Request) -> None:
        if request.failed:
            self.conn.send(("error", request.id, request.failed))
        else:
            self.conn.send(("done", request.id, request.results, request.batches))


def serve(conn: Connection) -> None:
    """Load the model named by the first message, then serve until stopped."""
    from meshops.serving.backends import load_backend
    from meshops.serving.spec import EngineParams, ModelManifest

    try:
        _, manifest_json, files, params_json, options = conn.recv()
        manifest = ModelManifest.model_validate_json(manifest_json)
        params = EngineParams.model_validate_json(params_json)
        backend = load_backend(manifest.backend)
        model = backend.load(manifest, {k: Path(v) for k, v in files.items()}, params, options)
    except Exception as exc:
        log.debug("model load failed:\n%s", traceback.format_exc())
        conn.send(("load_error", f"{type(exc).__name__}: {exc}"))
        conn.close()
        return
    max_batch = params.max_batch or manifest.max_batch
    max_wait = params.max_wait_ms if params.max_wait_ms is not None else manifest.max_wait_ms
    info = {**backend.describe(), "pid": os.getpid(), "max_batch": max_batch}
    conn.send(("ready", {**info, "max_wait_ms": max_wait}))
    server = _Server(conn, model, max_batch, max_wait / 1000.0)
    try:
        server.run()
    except (EOFError, OSError):
        pass  # the node went away: nothing left to answer
    finally:
        server.reader.close()
        conn.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m meshops.serving.server FD``: serve over the inherited socket ``FD``."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=os.environ.get("MESHOPS_LOG_LEVEL", "WARNING"))
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m meshops.serving.server FD", file=sys.stderr)
        return 2
    serve(Connection(int(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
