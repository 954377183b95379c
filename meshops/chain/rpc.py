"""Ethereum JSON-RPC methods answered by an in-process eth-tester (py-evm) chain.

Only the subset web3.py needs to deploy, call and transact with locally signed transactions,
plus ``evm_increaseTime`` / ``evm_mine`` (as anvil has them) so tests can make epochs pass, and
``meshops_resetClock`` (see ``behind_s``).
Values go out in wire format (hex quantities, camelCase keys); a revert comes back as geth
does it (code 3, ``data`` = revert bytes) so any client decodes custom errors unchanged.

Calls run through py-evm directly rather than eth-tester's ``call``, which turns custom
error data into text; everything that changes state goes through eth-tester.
Not thread-safe: the HTTP server serialises requests with a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from eth.vm.spoof import SpoofTransaction
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import BlockNotFound, TransactionNotFound, ValidationError
from eth_utils import decode_hex, to_canonical_address

__all__ = ["DEFAULT_PRIORITY_FEE", "RPCFailure", "TesterRPC"]

DEFAULT_PRIORITY_FEE = 10**9
_TAGS = ("latest", "pending", "safe", "finalized", "earliest")
_CALL_GAS = 30_000_000


class RPCFailure(Exception):
    """A JSON-RPC error object to send back (code, message, optional data)."""

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class TesterRPC:
    """Dispatch of JSON-RPC methods onto one eth-tester chain with a movable clock."""

    def __init__(self, tester: EthereumTester | None = None, *, behind_s: int = 0) -> None:
        """``behind_s``: start the chain's clock that many seconds in the past.

        A chain mines one block per transaction with strictly rising timestamps, so a burst
        of set-up transactions pushes chain time ahead of the wall clock. Starting behind
        absorbs such a burst; ``meshops_resetClock`` then brings the clock back to the wall
        clock (never backwards).
        """
        if tester is None:
            genesis = None
            if behind_s:
                overrides = {"timestamp": int(time.time()) - behind_s}
                genesis = PyEVMBackend.generate_genesis_params(overrides=overrides)
            tester = EthereumTester(PyEVMBackend(genesis_parameters=genesis))
        self.tester = tester
        self._offset = -behind_s
        self._methods: dict[str, Callable[..., Any]] = {
            "web3_clientVersion": lambda: "meshops-embedded/eth-tester",
            "net_version": lambda: str(self.chain_id),
            "eth_chainId": lambda: hex(self.chain_id),
            "eth_syncing": lambda: False,
            "eth_accounts": self.tester.get_accounts,
            "eth_blockNumber": lambda: hex(self._head().block_number),
            "eth_gasPrice": lambda: hex(self._pending_base_fee() + DEFAULT_PRIORITY_FEE),
            "eth_maxPriorityFeePerGas": lambda: hex(DEFAULT_PRIORITY_FEE),
            "eth_feeHistory": self._fee_history,
            "eth_getBalance": lambda a, b="latest": hex(self.tester.get_balance(a, _block(b))),
            "eth_getTransactionCount": lambda a, b="latest": hex(
                self.tester.get_nonce(a, _block(b))
            ),
            "eth_getCode": lambda a, b="latest": self.tester.get_code(a, _block(b)),
            "eth_getStorageAt": lambda a, p, b="latest": self.tester.get_storage_at(
                a, int(p, 16), _block(b)
            ),
            "eth_getBlockByNumber": self._block_by_number,
            "eth_getBlockByHash": self._block_by_hash,
            "eth_getTransactionByHash": self._transaction,
            "eth_getTransactionReceipt": self._receipt,
            "eth_sendRawTransaction": self._send_raw,
            "eth_call": lambda tx, b="latest", *_: "0x" + self._call(tx, b).hex(),
            "eth_estimateGas": self._estimate_gas,
            "eth_getLogs": self._logs,
            "evm_increaseTime": self._increase_time,
            "evm_mine": self._mine,
            "meshops_resetClock": self._reset_clock,
        }

    @property
    def chain_id(self) -> int:
        return int(self.tester.backend.chain.chain_id)

    def handle(self, method: str, params: list[Any]) -> Any:
        """The result for one request; raises ``RPCFailure`` for a JSON-RPC error."""
        handler = self._methods.get(method)
        if handler is None:
            raise RPCFailure(-32601, f"method {method} is not supported by the embedded chain")
        try:
            return handler(*params)
        except (TransactionNotFound, BlockNotFound):
            return None
        except TypeError as exc:
            raise RPCFailure(-32602, f"invalid params for {method}: {exc}") from exc
        except (ValidationError, ValueError, KeyError) as exc:
            raise RPCFailure(-32000, f"{method}: {exc}") from exc

    # -- clock ------------------------------------------------------------------------------
    def _now(self) -> int:
        return int(time.time()) + self._offset

    def _sync_clock(self) -> None:
        """Stamp the pending block with the current (shifted) time before it executes."""
        chain = self.tester.backend.chain
        stamp = max(self._now(), chain.get_canonical_head().timestamp + 1)
        if chain.header.timestamp != stamp:
            chain.header = chain.header.copy(timestamp=stamp)

    def _increase_time(self, seconds: int | str) -> str:
        """Move the clock ``seconds`` past the chain's current time.

        Counted from the later of the shifted wall clock and the head block, because with a
        block per transaction and strictly increasing timestamps the head can run ahead of
        the wall clock; anvil behaves the same way.
        """
        step = int(seconds, 16) if isinstance(seconds, str) else int(seconds)
        base = max(self._now(), self._head().timestamp)
        self._offset = base + step - int(time.time())
        return hex(self._offset)

    def _reset_clock(self) -> str:
        self._offset = 0
        return "0x0"

    def mine_if_behind(self) -> bool:
        """Mine an empty block if the head is older than the clock (a block-time tick)."""
        if self._head().timestamp >= self._now():
            return False
        self._mine()
        return True

    def _mine(self, *_: Any) -> str:
        self._sync_clock()
        self.tester.mine_blocks(1)
        return "0x0"

    # -- reads ------------------------------------------------------------------------------
    def _head(self) -> Any:
        return self.tester.backend.chain.get_canonical_head()

    def _pending_base_fee(self) -> int:
        return int(self.tester.get_block_by_number("pending")["base_fee_per_gas"])

    def _fee_history(self, count: str | int, newest: str, percentiles: list[float] = ()) -> Any:
        blocks = int(count, 16) if isinstance(count, str) else int(count)
        return _wire(self.tester.get_fee_history(blocks, _block(newest), list(percentiles)))

    def _block_by_number(self, number: str, full: bool = False) -> Any:
        if number == "pending":
            self._sync_clock()
        return _wire_block(self.tester.get_block_by_number(_block(number), full))

    def _block_by_hash(self, block_hash: str, full: bool = False) -> Any:
        return _wire_block(self.tester.get_block_by_hash(block_hash, full))

    def _transaction(self, tx_hash: str) -> Any:
        return _wire_tx(self.tester.get_transaction_by_hash(tx_hash))

    def _receipt(self, tx_hash: str) -> Any:
        receipt = dict(self.tester.get_transaction_receipt(tx_hash))
        receipt.pop("state_root", None)
        return _wire(receipt)

    def _logs(self, query: dict[str, Any]) -> Any:
        head = self._head().block_number
        logs = self.tester.get_logs(
            from_block=_block_number(query.get("fromBlock", "latest"), head),
            to_block=_block_number(query.get("toBlock", "latest"), head),
            address=query.get("address"),
            topics=query.get("topics"),
        )
        return _wire(list(logs))

    # -- execution --------------------------------------------------------------------------
    def _send_raw(self, raw: str) -> str:
        self._sync_clock()
        return self.tester.send_raw_transaction(raw)

    def _call(self, tx: dict[str, Any], block: str | int = "latest") -> bytes:
        """Execute ``tx`` on top of ``block`` without changing state; revert → code 3."""
        chain = self.tester.backend.chain
        number = _block(block)
        header = (
            chain.get_canonical_head()
            if number in _TAGS
            else chain.get_canonical_block_header_by_number(number)
        )
        sender = to_canonical_address(tx.get("from") or "0x" + "00" * 20)
        with chain.get_vm(header).in_costless_state() as state:
            unsigned = chain.create_unsigned_transaction(
                nonce=state.get_nonce(sender),
                gas_price=0,
                gas=_int(tx.get("gas")) or _CALL_GAS,
                to=to_canonical_address(tx["to"]) if tx.get("to") else b"",
                value=_int(tx.get("value")),
                data=decode_hex(tx.get("input") or tx.get("data") or "0x"),
            )
            computation = state.costless_execute_transaction(
                SpoofTransaction(unsigned, from_=sender)
            )
        if computation.is_error:
            error = computation.error
            data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
            raise RPCFailure(3, f"execution reverted: {error}", "0x" + data.hex())
        return bytes(computation.output)

    def _estimate_gas(self, tx: dict[str, Any], block: str = "latest", *_: Any) -> str:
        self._call(tx, block)  # surfaces a revert with its data before estimating
        request = {
            "from": tx.get("from") or "0x" + "00" * 20,
            "to": tx.get("to") or "",
            "value": _int(tx.get("value")),
            "data": tx.get("input") or tx.get("data") or "0x",
            "gas": _int(tx.get("gas")) or _CALL_GAS,
        }
        return hex(self.tester.estimate_gas(request, _block(block)))


def _int(value: Any) -> int:
    if value is None:
        return 0
    return int(value, 16) if isinstance(value, str) else int(value)


def _block(value: Any) -> Any:
    """A block parameter as eth-tester wants it: a tag or an int."""
    if isinstance(value, str) and value not in _TAGS:
        return int(value, 16)
    return value


def _block_number(value: Any, head: int) -> int | None:
    if value in ("latest", "pending", "safe", "finalized"):
        return head
    if value == "earliest":
        return 0
    return _block(value)


def _camel(key: str) -> str:
    first, *rest = key.split("_")
    return first + "".join(part.title() for part in rest)


def _wire(value: Any) -> Any:
    """eth-tester's Python values in JSON-RPC wire format."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if isinstance(value, dict):
        return {_camel(k): _wire(v) for k, v in value.items()}
    return value


def _wire_tx(tx: Any) -> Any:
    if not isinstance(tx, dict):
        return tx
    tx = dict(tx)
    tx["input"] = tx.pop("data", "0x")
    if not tx.get("to"):
        tx["to"] = None
    return _wire(tx)


def _wire_block(block: Any) -> Any:
    if block is None:
        return None
    block = dict(block)
    block["miner"] = block.pop("coinbase")
    if isinstance(block.get("logs_bloom"), int):
        block["logs_bloom"] = block["logs_bloom"].to_bytes(256, "big")
    txs = block.get("transactions", [])
    block["transactions"] = [_wire_tx(t) if isinstance(t, dict) else t for t in txs]
    return _wire(block)
