"""Anvil (Foundry's dev node) as a child process on a free loopback port.

A second, independent EVM implementation for the same tests: what passes on both py-evm and
anvil (revm) does not depend on one engine's quirks. The binary comes from npm
(``@foundry-rs/anvil-<platform>``, an optional dependency in ``contracts/package.json``, which
ships it inside the package), or from ``$MESHOPS_ANVIL`` / ``PATH``. The dev accounts are
funded to match the embedded chain, so both offer the same ``DEV_KEYS``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from eth_account import Account

from meshops.chain.devnet import DEV_BALANCE, DEV_KEYS
from meshops.chain.errors import ChainUnavailable

__all__ = ["AnvilChain", "find_anvil"]

log = logging.getLogger(__name__)
_NPM_BIN = Path(__file__).resolve().parents[2] / "contracts" / "node_modules" / ".bin" / "anvil"


def find_anvil() -> str | None:
    """Path of the anvil binary: ``$MESHOPS_ANVIL``, contracts' node_modules, then ``PATH``."""
    configured = os.environ.get("MESHOPS_ANVIL")
    if configured:
        return configured
    if _NPM_BIN.is_file():
        return str(_NPM_BIN)
    return shutil.which("anvil")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class AnvilChain:
    """``start()`` an anvil process, share ``url``, ``stop()`` kills and reaps it."""

    dev_keys = DEV_KEYS

    def __init__(
        self, binary: str | None = None, host: str = "127.0.0.1", chain_id: int = 31337
    ) -> None:
        self._binary = binary or find_anvil()
        self._host, self._chain_id = host, chain_id
        self._port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None

    @property
    def url(self) -> str:
        if self._proc is None:
            raise ChainUnavailable("anvil is not running")
        return f"http://{self._host}:{self._port}"

    @property
    def chain_id(self) -> int:
        return self._chain_id

    def start(self, timeout: float = 20.0) -> AnvilChain:
        """Run anvil, wait until it answers, fund the dev accounts; returns self."""
        if self._proc is not None:
            return self
        if self._binary is None:
            raise ChainUnavailable(
                "anvil not found: run `npm ci --prefix contracts` or set MESHOPS_ANVIL"
            )
        self._port = _free_port(self._host)
        self._stderr = tempfile.TemporaryFile()
        command = [
            self._binary,
            "--host",
            self._host,
            "--port",
            str(self._port),
            "--chain-id",
            str(self._chain_id),
            "--silent",
        ]
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr
            )
        except OSError as exc:
            raise ChainUnavailable(f"cannot run {self._binary}: {exc}") from exc
        try:
            self._wait_ready(self._proc, timeout)
            for key in self.dev_keys:
                address = Account.from_key(key).address
                self.request("anvil_setBalance", [address, hex(DEV_BALANCE)])
        except BaseException:
            self.stop()
            raise
        log.info("anvil serving at %s", self.url)
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                self._stderr.seek(0)
                reason = self._stderr.read().decode("utf-8", "replace").strip()
                raise ChainUnavailable(f"anvil exited with {proc.returncode}: {reason}")
            try:
                self.request("web3_clientVersion", [])
                return
            except ChainUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def request(self, method: str, params: list[Any]) -> Any:
        """One raw JSON-RPC call (used before any web3 client exists)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        req = urllib.request.Request(self.url, body.encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            raise ChainUnavailable(f"anvil at {self.url} does not answer: {exc}") from exc
        if "error" in answer:
            raise ChainUnavailable(f"anvil refused {method}: {answer['error']}")
        return answer.get("result")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate anvil (kill after ``timeout``) and reap it."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> AnvilChain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
