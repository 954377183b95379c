"""Oracle signatures over MQTT (``meshops.sdk.claims``): real oracle nodes on a broker answer
GET_CLAIMS from their epoch files; an owner verifies, merges and claims on the embedded
chain; bad requests are refused and a flood is cut off by the rate limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from meshops.chain import DEV_KEYS, ChainClient, EmbeddedChain, TokenConfig, TokenLayer, deploy
from meshops.chain.deployment import TOKEN
from meshops.chain.oracle import sign_claim
from meshops.chain.rewards_claims import claim, plan_claims
from meshops.node.availability import ORACLE_SIGNATURE, RateLimit
from meshops.protocol import EventType, NodeKey, encode_message
from meshops.sdk.claims import Query, fetch_signatures
from meshops.transport import MosquittoBroker
from tests.node.helpers import Client, refusal_delta, running_node, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EPOCH = 60


def _write(home: Path, epoch: int, node: str, value: int, signed: dict[str, str], dep: Any) -> None:
    """``HOME/epochs/<epoch>.json`` as an oracle writes it."""
    out = home / "epochs"
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "epoch": epoch,
        "chain_id": dep.chain_id,
        "rewards": dep.rewards,
        "agreed": {node: value},
        "claims": {node: {str(value): signed}},
    }
    (out / f"{epoch}.json").write_text(json.dumps(data))


def _sig(key: NodeKey, dep: Any, node: str, epoch: int, value: int) -> dict[str, str]:
    signature = sign_claim(key, dep.chain_id, dep.rewards, node, [epoch], [value])
    return {key.eth_address: "0x" + signature.hex()}


def _settings(keys: list[NodeKey], deployment: Path, dep: Any) -> dict[str, Any]:
    return {
        "oracle": True,
        "oracles": [k.eth_address for k in keys],
        "oracle_threshold": 2,
        "chain_deployment": deployment,
        "epoch_genesis": dep.genesis,
        "epoch_seconds": EPOCH,
    }


def test_owner_fetches_verifies_merges_and_claims(
    mosquitto: MosquittoBroker, embedded_chain: EmbeddedChain, tmp_path: Path
) -> None:
    oracle_a, oracle_b = NodeKey.generate(), NodeKey.generate()
    client = ChainClient(embedded_chain.url, DEV_KEYS[0])
    config = TokenConfig(
        oracles=[oracle_a.eth_address, oracle_b.eth_address], threshold=2, epoch_length=EPOCH
    )
    owner = TokenLayer(client, deploy(client, config))
    dep = owner.deployment
    user_key, node = NodeKey.generate(), NodeKey.generate()
    user = owner.as_account(user_key)
    client.send_eth(user.address, 10**18)
    owner.token.transfer(user.address, 2_000 * TOKEN)
    lic = user.licenses.buy()
    user.licenses.link(lic, node)
    first = user.rewards.clock.epoch_at(user.client.block_timestamp())
    owner.client.rpc("evm_increaseTime", [4 * EPOCH])
    owner.client.rpc("evm_mine", [])
    deployment = dep.save(tmp_path / "deployment.json")

    n = node.eth_address
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    for home, key in ((home_a, oracle_a), (home_b, oracle_b)):
        home.mkdir()
        key.save(home / "node.pem")
    both = {**_sig(oracle_a, dep, n, first, 255), **_sig(oracle_b, dep, n, first, 255)}
    _write(home_a, first, n, 255, both, dep)  # one file holds both signatures
    _write(home_a, first + 1, n, 100, _sig(oracle_a, dep, n, first + 1, 100), dep)
    _write(home_b, first + 1, n, 100, _sig(oracle_b, dep, n, first + 1, 100), dep)  # merged
    forged = {oracle_a.eth_address: "0x" + "22" * 65}  # garbage claimed to be A's
    _write(home_a, first + 2, n, 90, {**forged, **_sig(oracle_b, dep, n, first + 2, 90)}, dep)

    settings = _settings([oracle_a, oracle_b], deployment, dep)
    with (
        running_node(mosquitto.url, home_a, alias="oa", **settings),
        running_node(mosquitto.url, home_b, alias="ob", **settings),
    ):
        result = fetch_signatures(
            mosquitto.url,
            user_key,
            [Query(n, first, first + 4)],
            oracles=[oracle_a.eth_address, oracle_b.eth_address],
            threshold=2,
            chain_id=dep.chain_id,
            rewards=dep.rewards,
            timeout=15.0,
        )  # no candidates: both found by their heartbeats
        assert sorted(result.answered) == sorted([oracle_a.eth_address, oracle_b.eth_address])
        assert result.rejected == 1  # the forged one
        assert set(result.signatures[(n, first + 1)][100]) == {
            oracle_a.eth_address,
            oracle_b.eth_address,
        }
        plan = plan_claims(user, result.signatures)
        (entry,) = plan["licenses"]
        assert [e["epoch"] for e in entry["epochs"]] == [first, first + 1]
        assert entry["short"] == [{"epoch": first + 2, "signatures": 1}]
        paid = claim(user, plan)
        assert [p["paid"] for p in paid] == [10 * TOKEN, 10 * TOKEN * 100 // 255]

        pem = tmp_path / "user.pem"
        user_key.save(pem)
        flags = ["--chain", embedded_chain.url, "--deployment", str(deployment), "--key", str(pem)]
        ask = ["--broker", mosquitto.url, "--oracle", oracle_a.address]
        status = _cli("rewards", "status", *ask, "--json", *flags)
        assert status.returncode == 0, status.stderr
        states = json.loads(status.stdout)["licenses"][0]["epochs"]
        assert [(e["epoch"], e["claimed"]) for e in states] == [(first, True), (first + 1, True)]
        assert f"epoch(s) {first + 2}" in status.stderr  # the short one, named
        short = _cli("rewards", "claim", "--epoch", str(first + 2), *ask, *flags)
        _one_line_error(short, f"epoch {first + 2}: 1 valid oracle signature(s) over one value, 2")

    # nobody answers: one line naming the wait
    silent = _cli("rewards", "claim", "--broker", mosquitto.url, "--timeout", "1", *flags)
    _one_line_error(silent, "no oracle answered within 1 s")


def test_bad_requests_are_refused_and_a_flood_is_cut_off(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    oracle = NodeKey.generate()
    home = tmp_path / "oracle"
    home.mkdir()
    oracle.save(home / "node.pem")
    node = NodeKey.generate().eth_address
    with (
        running_node(mosquitto.url, home, alias="o", oracle=True) as running,
        Client(mosquitto.port) as client,
    ):
        client.wait_listening(running)
        topic = client.topics.payloads_for(running.address)
        path = [client.address, "admin_pipeline", ORACLE_SIGNATURE, None]

        def request(body: Any) -> dict[str, Any]:
            return client.envelope.build(
                EventType.PAYLOAD, {"ORACLE_DATA": body}, path=path, dest=running.address
            )

        good = {"OP": "GET_CLAIMS", "ID": "q", "NODE": node, "FROM": 0, "TO": 10}
        forged = request(good)
        forged["ORACLE_DATA"] = {**good, "TO": 10**9}  # changed after signing
        before = dict(running.refusals)
        client.send(running, b"\x00not json", topic=topic)
        client.send(running, forged, topic=topic)
        client.send(running, request({**good, "NODE": "nobody"}), topic=topic)
        client.send(running, request("GET_CLAIMS"), topic=topic)
        assert wait_until(lambda: sum(refusal_delta(running, before).values()) >= 4, 10.0)
        delta = refusal_delta(running, before)
        assert delta.get("bad_json") == 1
        assert delta.get("bad_field", 0) + delta.get("bad_command", 0) == 2
        assert sum(delta.values()) == 4  # the forged one under its own reason

        running.oracle.rate_limit = RateLimit(per_asker=(2, 1e-6), total=(100, 1.0))
        mark, before = client.mark(), dict(running.refusals)
        for _ in range(5):
            client.send(running, encode_message(request(good)), topic=topic)
        assert wait_until(lambda: refusal_delta(running, before).get("rate_limited") == 3, 10.0)
        answers = client.wait_for(
            2, 10.0, since=mark, topic=client.topics.payloads_for(client.address)
        )
        assert [a.body["ORACLE_DATA"]["OP"] for a in answers] == ["CLAIMS", "CLAIMS"]
        mine = client.topics.payloads_for(client.address)
        assert len(client.messages(since=mark, topic=mine)) == 2  # no more than the limit


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshops.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error:") and text in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
