"""``meshops wallet | license | rewards | escrow`` run as a user runs them (subprocesses),
against a JSON-RPC chain given with --chain and --deployment."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account

from meshops.chain import DEV_KEYS, ChainClient, EmbeddedChain, TokenConfig, TokenLayer, deploy
from meshops.chain.deployment import TOKEN
from meshops.chain.oracle import sign_claim
from meshops.protocol import NodeKey

pytestmark = pytest.mark.timeout(120)

ORACLES = DEV_KEYS[1:4]
EPOCH = 60


@dataclass
class World:
    chain: EmbeddedChain
    owner: TokenLayer
    user: TokenLayer
    user_pem: Path
    node_pem: Path
    node: NodeKey
    deployment: Path
    tmp: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        flags = ["--chain", self.chain.url, "--deployment", str(self.deployment)]
        return subprocess.run(
            [sys.executable, "-m", "meshops.cli", *args, *flags, "--key", str(self.user_pem)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> dict:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def advance(self, seconds: int) -> None:
        self.owner.client.rpc("evm_increaseTime", [seconds])
        self.owner.client.rpc("evm_mine", [])


@pytest.fixture(scope="module")
def chain() -> Iterator[EmbeddedChain]:
    with EmbeddedChain() as running:
        yield running


@pytest.fixture
def world(chain: EmbeddedChain, tmp_path: Path) -> World:
    client = ChainClient(chain.url, DEV_KEYS[0])
    config = TokenConfig(
        oracles=[Account.from_key(k).address for k in ORACLES], threshold=2, epoch_length=EPOCH
    )
    owner = TokenLayer(client, deploy(client, config))
    user_key, node = NodeKey.generate(), NodeKey.generate()
    user = owner.as_account(user_key)
    client.send_eth(user.address, 10**18)
    owner.token.transfer(user.address, 5_000 * TOKEN)
    user_pem, node_pem = tmp_path / "user.pem", tmp_path / "node.pem"
    user_key.save(user_pem)
    node.save(node_pem)
    path = owner.deployment.save(tmp_path / "deployment.json")
    return World(chain, owner, user, user_pem, node_pem, node, path, tmp_path)


def test_wallet_licences_and_escrow(world: World) -> None:
    wallet = world.ok("wallet")
    assert wallet["address"] == world.user.address
    assert wallet["tokens"] == 5_000 * TOKEN and wallet["licenses"] == []

    bought = world.ok("license", "buy")
    assert bought["price"] == 1_000 * TOKEN
    lic = bought["license"]
    linked = world.ok("license", "link", str(lic), "--node", str(world.node_pem))
    assert linked["node"] == world.node.eth_address
    listed = world.ok("license", "list")["licenses"]
    assert [(x["license"], x["node"]) for x in listed] == [(lic, world.node.eth_address)]
    world.ok("license", "unlink", str(lic))
    assert world.user.licenses.node_of(lic) is None
    assert world.user.token.balance_of() == 4_000 * TOKEN

    job = world.ok("escrow", "create", "25.5", "--deadline", "600")["job"]
    assert world.user.token.balance_of() == 4_000 * TOKEN - 25_500 * TOKEN // 1000
    status = world.ok("escrow", "status", str(job))
    assert status["status"] == "open" and status["price"] == 25_500 * TOKEN // 1000
    assert world.ok("escrow", "cancel", str(job))["refund"] == 25_500 * TOKEN // 1000
    assert world.user.token.balance_of() == 4_000 * TOKEN

    again = world.cli("escrow", "cancel", str(job))
    _one_line_error(again, f"job {job} is no longer open")
    _one_line_error(world.cli("escrow", "create", "lots"), "not 'lots'")
    _one_line_error(world.cli("license", "link", str(lic), "--node", "nowhere"), "--node 'nowhere'")


def test_rewards_are_claimed_once_from_oracle_files(world: World) -> None:
    lic = world.user.licenses.buy()
    world.user.licenses.link(lic, world.node)
    clock = world.user.rewards.clock
    first = clock.epoch_at(world.user.client.block_timestamp())
    world.advance(3 * EPOCH)
    values = {first: 255, first + 1: 100}
    oracle_dir = world.tmp / "oracle"
    oracle_dir.mkdir()
    for epoch, value in values.items():  # what an oracle node writes: HOME/epochs/<epoch>.json
        signed = {
            Account.from_key(k).address: "0x"
            + sign_claim(
                k,
                world.owner.deployment.chain_id,
                world.owner.deployment.rewards,
                world.node.eth_address,
                [epoch],
                [value],
            ).hex()
            for k in ORACLES[:2]
        }
        claims = {world.node.eth_address: {str(value): signed}}
        (oracle_dir / f"{epoch}.json").write_text(json.dumps({"epoch": epoch, "claims": claims}))
    (oracle_dir / "junk.json").write_text("{not json")  # skipped, not fatal

    status = world.ok("rewards", "status", "--signatures", str(oracle_dir))
    expected = {e: 10 * TOKEN * v // 255 for e, v in values.items()}
    assert status["claimable_epochs"] == 2
    assert status["claimable_reward"] == sum(expected.values())
    before = world.user.token.balance_of()
    claimed = world.ok("rewards", "claim", "--signatures", str(oracle_dir))
    assert {c["epoch"]: c["paid"] for c in claimed["claims"]} == expected
    assert world.user.token.balance_of() == before + sum(expected.values())

    again = world.cli("rewards", "claim", "--epoch", str(first), "--signatures", str(oracle_dir))
    _one_line_error(again, f"epoch {first} already claimed for license {lic}")
    later = world.cli("rewards", "claim", "--epoch", "999999", "--signatures", str(oracle_dir))
    _one_line_error(later, "epoch 999999 has not ended")


def test_without_a_network_or_chain_the_error_says_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "meshops.cli", "wallet", "--home", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    _one_line_error(result, "no MeshOps network runs from")
    assert "meshops up" in result.stderr


def _one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error:") and text in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_escrow_attested_by_oracle_keys_pays_nodes_and_refunds(world: World) -> None:
    oracle_pems = []
    for i, secret in enumerate(ORACLES[:2]):
        oracle_pems.append(str(NodeKey(secret).save(world.tmp / f"oracle{i}.pem")))
    world.owner.client.send_eth(world.node.eth_address, 10**17)  # gas for its withdrawal
    job = world.ok("escrow", "create", "40")["job"]
    signers = [flag for pem in oracle_pems for flag in ("--oracle", pem)]

    one = world.cli(
        "escrow",
        "attest",
        str(job),
        "--pay",
        f"{world.node.address}=10",
        "--oracle",
        oracle_pems[0],
    )
    _one_line_error(one, "2 oracle signatures are needed, and only 1")
    stranger = str(NodeKey.generate().save(world.tmp / "stranger.pem"))
    forged = world.cli(
        "escrow",
        "attest",
        str(job),
        "--pay",
        f"{world.node.address}=10",
        "--oracle",
        oracle_pems[0],
        "--oracle",
        stranger,
    )
    _one_line_error(forged, "2 oracle signatures are needed, and only 1")

    first = world.ok(
        "escrow", "attest", str(job), "--pay", f"{world.node.eth_address}=10", *signers
    )
    assert first["round"] == 0 and first["attested"] == 10 * TOKEN
    before = world.user.token.balance_of()
    last = world.ok(
        "escrow", "attest", str(job), "--pay", f"{world.node.address}=20", "--final", *signers
    )
    assert last["round"] == 1 and last["status"] == "completed"
    assert world.user.token.balance_of() == before + 10 * TOKEN  # 40 - 10 - 20, refunded

    paid = world.ok("escrow", "withdraw", str(job), "--node", str(world.node_pem))
    assert paid["account"] == world.node.eth_address and paid["amount"] == 30 * TOKEN
    _one_line_error(
        world.cli("escrow", "withdraw", str(job), "--node", str(world.node_pem)),
        "nothing attested to withdraw",
    )
    _one_line_error(
        world.cli("escrow", "attest", str(job), "--pay", "x", *signers), "expected NODE=TOKENS"
    )
