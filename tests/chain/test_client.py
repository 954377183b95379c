"""The chain client and the local chains: sharing by URL, failures as clear ChainErrors."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import replace

import pytest
from web3.exceptions import TransactionNotFound

from meshops.chain import (
    DEV_KEYS,
    ArtifactError,
    ChainClient,
    ChainUnavailable,
    ContractRevert,
    Deployment,
    EmbeddedChain,
    TokenLayer,
    Unauthorized,
)
from meshops.chain.deployment import TOKEN
from meshops.errors import ChainError

from .helpers import Net

_OTHER_PROCESS = """
import sys
from meshops.chain import ChainClient, Deployment, TokenLayer
url, record, key = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
layer = TokenLayer(ChainClient(url, key), Deployment.load(record))
layer.token.transfer(sys.argv[4], 7)
print(layer.token.balance_of(sys.argv[4]))
"""


def test_another_process_shares_the_chain(net: Net, tmp_path) -> None:
    record = net.owner.deployment.save(tmp_path / "deployment.json")
    assert Deployment.load(record) == net.owner.deployment
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _OTHER_PROCESS,
            net.chain.url,
            str(record),
            DEV_KEYS[4].hex(),
            net.bob.address,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"
    assert net.bob.token.balance_of() == 7  # seen from this process too


def test_a_mined_failure_is_explained(net: Net) -> None:
    fn = net.alice.token.contract.functions.mint(net.alice.address, 1)
    with pytest.raises(Unauthorized, match="is not an authorised minter"):
        net.alice.client.send(fn, gas=200_000)  # no estimate: it is mined, then replayed
    latest = net.alice.client.w3.eth.get_block("latest", full_transactions=True)
    receipt = net.alice.client.w3.eth.get_transaction_receipt(latest["transactions"][0]["hash"])
    assert receipt["status"] == 0


def test_concurrent_sends_from_one_account_get_distinct_nonces(net: Net) -> None:
    errors: list[BaseException] = []

    def send() -> None:
        try:
            net.owner.token.transfer(net.bob.address, TOKEN)
        except ChainError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert net.bob.token.balance_of() == 6 * TOKEN


def test_views_revert_with_decoded_errors(net: Net) -> None:
    with pytest.raises(ContractRevert, match="license 3 does not exist") as caught:
        net.alice.client.call(net.alice.licenses.contract.functions.ownerOf(3))
    assert caught.value.error == "ERC721NonexistentToken"
    assert caught.value.error_args == {"tokenId": 3}


def test_wrong_chain_for_a_deployment_is_refused(net: Net) -> None:
    elsewhere = replace(net.owner.deployment, chain_id=net.chain_id + 1)
    with pytest.raises(ArtifactError, match="the deployment is on chain"):
        TokenLayer(net.owner.client, elsewhere)


def test_time_moves_on_request(net: Net) -> None:
    before = net.now()
    net.advance(1000)
    assert net.now() >= before + 1000


def test_unreachable_node_is_chain_unavailable() -> None:
    chain = EmbeddedChain().start()
    url = chain.url
    chain.stop()
    with pytest.raises(ChainUnavailable, match="does not answer"):
        ChainClient(url, DEV_KEYS[0], request_timeout=2).eth_balance()


def test_embedded_chain_stops_its_threads() -> None:
    before = {t.name for t in threading.enumerate()}
    with EmbeddedChain() as chain:
        client = ChainClient(chain.url, DEV_KEYS[0])
        assert client.eth_balance() > 0
        assert client.chain_id == chain.chain_id
        with pytest.raises(ChainError, match="not supported by the embedded chain"):
            client.rpc("debug_traceTransaction", [])
    leftover = {t.name for t in threading.enumerate()} - before
    assert leftover == set()


def test_reads_web3_needs_work_on_both_chains(net: Net) -> None:
    w3 = net.owner.client.w3
    receipt = net.owner.token.transfer(net.bob.address, 3)
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    assert (tx["from"], tx["to"], tx["blockNumber"]) == (
        net.owner.address,
        net.owner.token.address,
        receipt["blockNumber"],
    )
    logs = net.owner.token.contract.events.Transfer.get_logs(
        from_block=receipt["blockNumber"], argument_filters={"to": net.bob.address}
    )
    assert [(log["args"]["to"], log["args"]["value"]) for log in logs] == [(net.bob.address, 3)]
    assert w3.eth.gas_price > 0
    assert len(w3.eth.fee_history(2, "latest", [50])["baseFeePerGas"]) >= 2
    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=True)
    assert block["transactions"][0]["hash"] == receipt["transactionHash"]
    with pytest.raises(TransactionNotFound):  # unknown hash: null, as geth answers
        w3.eth.get_transaction_receipt("0x" + "00" * 32)
