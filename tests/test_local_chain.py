"""``meshops up`` with its chain, end to end: the oracle nodes measure availability over
short epochs, agree and sign; the owner claims through the CLI; an escrowed job is attested
by the oracle nodes' keys, paid and its remainder refunded; ``down`` stops the chain too."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from meshops.chain import ChainClient, Deployment, JobStatus, TokenLayer, sign_attestation
from meshops.chain.deployment import TOKEN
from meshops.chain.rewards_claims import collect_signatures, plan_claims
from meshops.local import LocalNetwork, stop
from meshops.local.procs import port_accepts
from meshops.local.state import STATE_FILE
from meshops.protocol import NodeKey
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

EPOCH = 3


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "up"
    if (tmp_path / "up" / STATE_FILE).exists():
        stop(tmp_path / "up", timeout=5)


def test_epochs_rewards_and_escrow_on_a_local_network(home: Path, tmp_path: Path) -> None:
    user = NodeKey.generate()
    pem = tmp_path / "user.pem"
    user.save(pem)
    net = LocalNetwork(
        home, port=0, workers=2, client_key=user, chain="embedded", epoch_seconds=EPOCH
    )
    info = net.start(timeout=40, demo=True)
    assert info.first_payload_s is not None and info.deployment and info.chain is not None
    deployment = Deployment.load(info.deployment)
    assert deployment.epoch_length == EPOCH and deployment.genesis == info.epoch_genesis
    layer = TokenLayer(ChainClient(info.chain_url, user), deployment)
    assert layer.threshold() == 2 and sorted(layer.oracles()) == sorted(n.eth for n in info.nodes)
    licenses = layer.licenses.owned_by()
    assert {layer.licenses.node_of(i) for i in licenses} == {n.eth for n in info.nodes}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshops.cli", *args, "--home", str(home), "--key", str(pem)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    dirs = [Path(n.home) / "epochs" for n in info.nodes]

    def signed_epochs() -> int:
        plan = plan_claims(layer, collect_signatures(dirs))
        return min(len(lic["epochs"]) for lic in plan["licenses"])

    assert wait_until(lambda: signed_epochs() >= 2, timeout=60, interval=0.5)

    status = cli("rewards", "status", "--json")
    assert status.returncode == 0, status.stderr
    plan = json.loads(status.stdout)
    assert plan["claimable_epochs"] >= 2 * len(info.nodes)
    before = layer.token.balance_of()
    claimed = cli("rewards", "claim", "--json")
    assert claimed.returncode == 0, claimed.stderr
    claims = json.loads(claimed.stdout)["claims"]
    assert len(claims) >= plan["claimable_epochs"]
    for claim in claims:
        assert 0 < claim["availability"] <= 255
        assert claim["paid"] == 10 * TOKEN * claim["availability"] // 255
    assert layer.token.balance_of() == before + sum(c["paid"] for c in claims)
    first = claims[0]
    again = cli("rewards", "claim", "--epoch", str(first["epoch"]), "--json")
    assert again.returncode == 1
    assert again.stderr.startswith("error:") and "already claimed" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    # an escrowed job: the client locks 40, the oracle nodes attest 30 to a worker, final
    created = cli("escrow", "create", "40", "--json")
    assert created.returncode == 0, created.stderr
    job = json.loads(created.stdout)["job"]
    worker = next(n for n in info.nodes if n.alias == "worker-1")
    oracle_keys = [NodeKey.load(Path(n.home) / "node.pem") for n in info.nodes[:2]]
    nodes, amounts = [worker.eth], [30 * TOKEN]
    sigs = [
        sign_attestation(k, deployment.chain_id, deployment.escrow, job, 0, True, nodes, amounts)
        for k in oracle_keys
    ]
    balance = layer.token.balance_of()
    layer.escrow.attest(job, 0, True, nodes, amounts, sigs)
    assert layer.token.balance_of() == balance + 10 * TOKEN  # the remainder, refunded
    worker_layer = layer.as_account(NodeKey.load(Path(worker.home) / "node.pem"))
    assert worker_layer.escrow.withdraw(job) == 30 * TOKEN
    assert worker_layer.token.balance_of() == 30 * TOKEN
    shown = cli("escrow", "status", str(job), "--json")
    assert json.loads(shown.stdout)["status"] == JobStatus.COMPLETED.name.lower()

    chain_pid, chain_port = info.chain.pid, int(info.chain_url.rsplit(":", 1)[1])
    down = subprocess.run(
        [sys.executable, "-m", "meshops.cli", "down", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0 and "the chain" in down.stdout
    assert not psutil.pid_exists(chain_pid) or psutil.Process(chain_pid).status() == "zombie"
    assert not port_accepts(chain_port)
