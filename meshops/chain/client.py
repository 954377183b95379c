"""One account on one EVM chain: calls, locally signed transactions, receipts, clear reverts.

Works the same against the embedded chain, anvil or any JSON-RPC node by URL: transactions
are signed here with the node's own key (EIP-1559, chain id read from the node) and sent raw,
so no node ever holds a MeshOps key. Every failure leaves as a ``ChainError``; reverts are
decoded from the contracts' custom errors ("epoch 12 already claimed for license 3").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.types import TxParams, TxReceipt

from meshops.chain.account import KeyLike, as_account
from meshops.chain.compiled import load_artifact
from meshops.chain.errors import (
    ChainError,
    ChainUnavailable,
    ContractRevert,
    TransactionFailed,
)
from meshops.chain.revert import decode_revert

__all__ = ["ChainClient", "ReceiptHook"]

log = logging.getLogger(__name__)

ReceiptHook = Callable[[str, TxReceipt], None]
"""Called with (label, receipt) after every mined transaction: gas accounting, audit logs."""


class ChainClient:
    """Talk to ``url`` as the account of ``key``.

    Thread-safe: a lock orders nonce assignment, so threads of one process may send at once.
    """

    def __init__(
        self,
        url: str,
        key: KeyLike,
        *,
        request_timeout: float = 30.0,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.05,
        on_receipt: ReceiptHook | None = None,
    ) -> None:
        self.url = url
        self.account = as_account(key)
        self.request_timeout = request_timeout
        self.w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": request_timeout}))
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.on_receipt = on_receipt
        self._lock = threading.Lock()
        self._next_nonce = 0

    @property
    def address(self) -> str:
        """This client's account (checksummed)."""
        return str(self.account.address)

    @functools.cached_property
    def chain_id(self) -> int:
        with _translated("eth_chainId"):
            return int(self.w3.eth.chain_id)

    def with_key(self, key: KeyLike) -> ChainClient:
        """A client for another account on the same chain (same timeouts and hook)."""
        return ChainClient(
            self.url,
            key,
            request_timeout=self.request_timeout,
            receipt_timeout=self.receipt_timeout,
            poll_interval=self.poll_interval,
            on_receipt=self.on_receipt,
        )

    # -- reading ----------------------------------------------------------------------------
    def contract(self, name: str, address: str) -> Contract:
        """The deployed contract ``name`` (a MeshOps artifact) at ``address``."""
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=load_artifact(name).abi
        )

    def call(self, fn: ContractFunction, *, block: str | int = "latest") -> Any:
        """Run a view (or simulate a write) as this account; a revert raises ContractRevert."""
        with _translated(fn.fn_name):
            return fn.call({"from": self.address}, block_identifier=block)

    def eth_balance(self, address: str | None = None) -> int:
        """Wei held by ``address`` (default: this account)."""
        with _translated("eth_getBalance"):
            return int(self.w3.eth.get_balance(Web3.to_checksum_address(address or self.address)))

    def block_timestamp(self) -> int:
        """Timestamp of the latest block: the chain's idea of now (dev chains can move it)."""
        with _translated("eth_getBlockByNumber"):
            return int(self.w3.eth.get_block("latest")["timestamp"])

    def rpc(self, method: str, params: list[Any]) -> Any:
        """A raw JSON-RPC request (``evm_increaseTime`` and other node-specific methods)."""
        with _translated(method):
            response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error']}")
        return response.get("result")

    # -- writing ----------------------------------------------------------------------------
    def send(
        self,
        fn: ContractFunction | ContractConstructor,
        *,
        value: int = 0,
        gas: int | None = None,
        label: str | None = None,
    ) -> TxReceipt:
        """Sign and send a contract call, wait for it to be mined; return the receipt.

        Without ``gas`` it is estimated first, so a call that would revert raises its decoded
        error here without spending anything; with ``gas`` it is sent as is, and a revert in
        the block is replayed to explain it.
        """
        name = label or getattr(fn, "fn_name", "deploy")
        with _translated(name):
            with self._lock:
                base = self._base_tx(value)
                if gas is not None:
                    base["gas"] = gas
                tx = fn.build_transaction(base)
                tx_hash = self._sign_and_send(tx)
            return self._wait(tx_hash, tx, name)

    def deploy(self, name: str, *args: Any) -> tuple[Contract, TxReceipt]:
        """Deploy artifact ``name`` with constructor ``args``; the contract and its receipt."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.send(factory.constructor(*args), label=f"deploy {name}")
        address = receipt["contractAddress"]
        if address is None:
            raise TransactionFailed(f"deploying {name} created no contract")
        return self.contract(name, address), receipt

    def send_eth(self, to: str, wei: int) -> TxReceipt:
        """Transfer ether (gas money) to ``to``."""
        with _translated("send ether"):
            with self._lock:
                tx = self._base_tx(wei)
                tx.update({"to": Web3.to_checksum_address(to), "gas": 21_000})
                tx.update(self._fees())
                tx_hash = self._sign_and_send(tx)
            return self._wait(tx_hash, tx, "send ether")

    def _base_tx(self, value: int) -> TxParams:
        nonce = max(self.w3.eth.get_transaction_count(self.address, "pending"), self._next_nonce)
        return {"from": self.address, "chainId": self.chain_id, "nonce": nonce, "value": value}

    def _fees(self) -> TxParams:
        tip = int(self.w3.eth.max_priority_fee)
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

    def _sign_and_send(self, tx: TxParams) -> bytes:
        """Sign locally and hand to the node; the caller holds the nonce lock."""
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._next_nonce = int(tx["nonce"]) + 1
        return bytes(tx_hash)

    def _wait(self, tx_hash: bytes, tx: TxParams, label: str) -> TxReceipt:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=self.receipt_timeout, poll_latency=self.poll_interval
        )
        if receipt["status"] != 1:
            raise self._explain_failure(tx, receipt)
        log.debug("%s mined in block %d, gas %d", label, receipt["blockNumber"], receipt["gasUsed"])
        if self.on_receipt is not None:
            self.on_receipt(label, receipt)
        return receipt

    def _explain_failure(self, tx: TxParams, receipt: TxReceipt) -> ChainError:
        """Why a mined transaction failed: replay it as a call on the block before."""
        replay = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}  # type: ignore[literal-required]
        block = max(0, int(receipt["blockNumber"]) - 1)
        try:
            self.w3.eth.call(replay, block_identifier=block)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return decode_revert(_revert_data(exc))
        return TransactionFailed(
            f"transaction {receipt['transactionHash'].hex()} failed in block "
            f"{receipt['blockNumber']} (gas used {receipt['gasUsed']} of {tx.get('gas')})"
        )


def _revert_data(exc: ContractLogicError) -> bytes | str | None:
    data = exc.data
    if isinstance(data, dict):  # some nodes nest it: {"data": "0x..."}
        data = data.get("data")
    return data if isinstance(data, bytes | str) else None


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Re-raise web3 / transport failures of ``action`` as ChainError subclasses."""
    try:
        yield
    except ChainError:
        raise
    except ContractLogicError as exc:
        data = _revert_data(exc)
        if data:
            raise decode_revert(data) from exc
        raise ContractRevert(f"{action}: {exc.message or 'reverted'}", "", {}, b"") from exc
    except TimeExhausted as exc:
        raise TransactionFailed(f"{action}: no receipt in time ({exc})") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ChainUnavailable(f"{action}: the chain node does not answer ({exc})") from exc
    except Web3RPCError as exc:
        raise ChainError(f"{action}: the node refused it: {exc.message or exc}") from exc
    except Web3Exception as exc:
        raise ChainError(f"{action}: {exc}") from exc
