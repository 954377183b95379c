"""An embedded EVM chain (eth-tester + py-evm) served as JSON-RPC over loopback HTTP.

Served over HTTP, not used in-process, so that every MeshOps process on the machine (nodes,
CLI, tests) shares one chain through the same ``ChainClient`` code that talks to a real node.
Ten dev accounts are pre-funded (``DEV_KEYS``). Every block is mined as its transaction
arrives. The chain lives in memory and ends with ``stop()``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from meshops.chain.devnet import DEV_KEYS
from meshops.chain.errors import ChainUnavailable
from meshops.chain.rpc import RPCFailure, TesterRPC

__all__ = ["EmbeddedChain"]

log = logging.getLogger(__name__)
_MAX_BODY = 8 * 1024 * 1024


class EmbeddedChain:
    """A local chain on a free loopback port; ``start()`` then share ``url``; ``stop()``."""

    dev_keys = DEV_KEYS

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        behind_s: int = 0,
        block_time: float | None = None,
    ) -> None:
        """``behind_s``: start the clock in the past (see ``TesterRPC``); ``block_time``:
        mine an empty block that often when no transaction did, so that views such as
        ``currentEpoch()`` follow the clock as on a real chain (default: only on demand)."""
        if block_time is not None and block_time <= 0:
            raise ValueError("block_time must be positive")
        self._host, self._port = host, port
        self._behind_s = behind_s
        self._block_time = block_time
        self._rpc: TesterRPC | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._miner: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def url(self) -> str:
        if self._server is None:
            raise ChainUnavailable("the embedded chain is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def chain_id(self) -> int:
        if self._rpc is None:
            raise ChainUnavailable("the embedded chain is not running")
        return self._rpc.chain_id

    def start(self) -> EmbeddedChain:
        """Create the chain (genesis now) and serve it; returns self."""
        if self._server is not None:
            return self
        self._rpc = TesterRPC(behind_s=self._behind_s)
        try:
            self._server = _Server((self._host, self._port), self._rpc)
        except OSError as exc:
            raise ChainUnavailable(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"embedded-chain:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        if self._block_time is not None:
            self._stopping.clear()
            self._miner = threading.Thread(
                target=self._mine_loop,
                args=(self._server, self._rpc, self._block_time),
                name=f"embedded-chain-miner:{self._server.server_address[1]}",
                daemon=True,
            )
            self._miner.start()
        log.info("embedded chain %d serving at %s", self.chain_id, self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close open connections and join every thread; the chain is gone."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        if self._miner is not None:
            self._miner.join(timeout)
            self._miner = None
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the request threads
        if thread is not None:
            thread.join(timeout)
        self._server = self._thread = None
        self._rpc = None

    def _mine_loop(self, server: _Server, rpc: TesterRPC, block_time: float) -> None:
        while not self._stopping.wait(block_time):
            try:
                with server.lock:
                    rpc.mine_if_behind()
            except Exception:  # a failed tick must not end the chain
                log.exception("embedded chain: mining an empty block failed")

    def __enter__(self) -> EmbeddedChain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    """One thread per connection (keep-alive); one lock around the chain."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], rpc: TesterRPC) -> None:
        super().__init__(address, _Handler)
        self.rpc = rpc
        self.lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive sockets so they end now."""
        with self._connections_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    log.debug("connection already closed")

    def answer(self, request: Any) -> dict[str, Any] | None:
        """The JSON-RPC response to one request object (None for a notification)."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32600, "message": "invalid request"},
            }
        params = request.get("params") or []
        try:
            with self.lock:
                result = self.rpc.handle(request["method"], list(params))
            response: dict[str, Any] = {"result": result}
        except RPCFailure as exc:
            response = {"error": exc.to_json()}
        except Exception as exc:  # a bug here must answer the client, not kill the thread
            log.exception("embedded chain failed on %s", request["method"])
            response = {"error": {"code": -32603, "message": f"internal error: {exc}"}}
        if "id" not in request:
            return None
        return {"jsonrpc": "2.0", "id": request["id"], **response}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out as two writes: without this, delayed ACKs cost 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self.send_error(413, "request too large")
            return
        try:
            body = json.loads(self.rfile.read(length))
        except json.JSONDecodeError:
            self._reply(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
            )
            return
        if isinstance(body, list):
            answers = [a for a in (self.server.answer(r) for r in body) if a is not None]
            self._reply(answers)
        else:
            self._reply(self.server.answer(body))

    def _reply(self, payload: Any) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("embedded chain: " + format, *args)
