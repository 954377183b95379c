"""The token-layer commands of ``meshops``: wallet, license, rewards, escrow.

Without flags they use the network ``meshops up`` started (``--home``): its chain URL, its
deployment record and, for rewards, the claim signatures its oracle nodes wrote under their
homes (``epochs/<epoch>.json``), or asked of them over its broker when those files are not
here. ``--chain URL --deployment FILE`` use any JSON-RPC node; ``--broker mqtt://...`` asks
the oracle nodes on any broker, ``--signatures DIR`` reads oracle epoch files from anywhere.
The account is the client key
(``--key``, default ``~/.meshops/client.pem``). Every ``MeshOpsError`` becomes one line on
stderr and exit code 1.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from meshops._cli_common import console, err_console, one_line_errors
from meshops.errors import ConfigError

if TYPE_CHECKING:
    from meshops.chain import TokenLayer
    from meshops.local import NetworkInfo

__all__ = ["escrow_app", "license_app", "rewards_app", "wallet"]

out = console
err = err_console

UNIT = 10**18
UP_HOME = Path("~/.meshops/up")

HomeOpt = Annotated[
    Path, typer.Option("--home", help="The folder `meshops up` used (its chain and oracles).")
]
ChainOpt = Annotated[
    str | None,
    typer.Option("--chain", metavar="URL", help="JSON-RPC URL (default: the local network's)."),
]
DeploymentOpt = Annotated[
    Path | None,
    typer.Option("--deployment", metavar="FILE", help="Deployment record (JSON)."),
]
KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", metavar="PATH", help="Account key (PEM); default ~/.meshops/client.pem."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def tokens(text: str) -> int:
    """``"12.5"`` tokens in the smallest unit; ConfigError naming the value if it is not one."""
    try:
        value = Decimal(text) * UNIT
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0 or value != value.to_integral_value():
        raise ConfigError(f"amount must be a positive number of tokens, not {text!r}")
    return int(value)


def show(wei: int) -> str:
    text = f"{Decimal(wei) / UNIT:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass
class Ctx:
    layer: TokenLayer
    info: NetworkInfo | None
    as_json: bool
    key_path: Path | None = None

    def emit(self, data: dict[str, Any], table: Table | str) -> None:
        if self.as_json:
            typer.echo(json.dumps(data, indent=2))
        else:
            out.print(table, soft_wrap=True)


@contextlib.contextmanager
def opened(
    home: Path, chain: str | None, deployment: Path | None, key: Path | None, as_json: bool
) -> Iterator[Ctx]:
    """The token layer for ``key`` on the chosen chain; every failure is one line."""
    with one_line_errors():
        yield _open(home, chain, deployment, key, as_json)


def _open(
    home: Path, chain: str | None, deployment: Path | None, key: Path | None, as_json: bool
) -> Ctx:
    from meshops.chain import ChainClient, Deployment, TokenLayer
    from meshops.local import status
    from meshops.local.control import resolve_home
    from meshops.sdk.keys import load_client_key

    info = None
    if chain is None or deployment is None:
        info = status(home)
        if info is None:
            raise ConfigError(
                f"no MeshOps network runs from {resolve_home(home)}: start one with "
                "`meshops up`, or pass --chain URL and --deployment FILE"
            )
        if not info.deployment:
            raise ConfigError(
                f"the network in {info.home} has no chain (started with --no-chain?); "
                "pass --chain URL and --deployment FILE"
            )
    url = chain or (info.chain_url if info else None)
    record = deployment or Path(info.deployment if info and info.deployment else "")
    if not url or not url.startswith(("http://", "https://")):
        raise ConfigError(f"--chain must be an http(s):// JSON-RPC URL, not {url!r}")
    client = ChainClient(url, load_client_key(key), request_timeout=10.0)
    return Ctx(TokenLayer(client, Deployment.load(record)), info, as_json, key)


# ---- wallet ---------------------------------------------------------------------------------


def wallet(
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the account: its addresses, ether and token balances, licences."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        layer = ctx.layer
        data = {
            "address": layer.address,
            "chain_id": layer.deployment.chain_id,
            "eth": layer.client.eth_balance(),
            "tokens": layer.token.balance_of(),
            "licenses": layer.licenses.owned_by(),
        }
        table = Table("account", "ether", "tokens", "licences", box=None)
        table.add_row(
            data["address"],
            show(data["eth"]),
            show(data["tokens"]),
            ", ".join(map(str, data["licenses"])) or "-",
        )
        ctx.emit(data, table)


# ---- licences -------------------------------------------------------------------------------

license_app = typer.Typer(help="Node licences: buy, link to a node, unlink, list.")


@license_app.command("buy")
def license_buy(
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Buy a licence (its price in tokens is burnt)."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        price = ctx.layer.licenses.price()
        license_id = ctx.layer.licenses.buy()
        ctx.emit(
            {"license": license_id, "price": price},
            f"bought licence {license_id} for {show(price)} tokens",
        )


def _node_key(node: str, info: NetworkInfo | None) -> Any:
    """A node's key: a PEM file, or the alias of a node of the local network."""
    from meshops.protocol import NodeKey

    path = Path(node).expanduser()
    if not path.is_file() and info is not None:
        match = [n for n in info.nodes if n.alias == node]
        if match:
            path = Path(match[0].home) / "node.pem"
    if not path.is_file():
        raise ConfigError(f"--node {node!r} is neither a key file nor a node of the local network")
    return NodeKey.load(path)


@license_app.command("link")
def license_link(
    license_id: Annotated[int, typer.Argument(metavar="LICENSE", min=1, help="Licence id.")],
    node: Annotated[
        str, typer.Option("--node", help="The node's key file, or a local network node's alias.")
    ],
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link a licence to a node; the node's key signs its consent."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        node_key = _node_key(node, ctx.info)
        ctx.layer.licenses.link(license_id, node_key)
        ctx.emit(
            {"license": license_id, "node": node_key.eth_address},
            f"licence {license_id} linked to {node_key.eth_address}",
        )


@license_app.command("unlink")
def license_unlink(
    license_id: Annotated[int, typer.Argument(metavar="LICENSE", min=1, help="Licence id.")],
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unlink a licence from its node."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        ctx.layer.licenses.unlink(license_id)
        ctx.emit({"license": license_id}, f"licence {license_id} unlinked")


@license_app.command("list")
def license_list(
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the account's licences and the nodes they are linked to."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        infos = [ctx.layer.licenses.info(i) for i in ctx.layer.licenses.owned_by()]
        rows = [{"license": i.license_id, "node": i.node, "linked_at": i.linked_at} for i in infos]
        table = Table("licence", "node", "linked at", box=None)
        for row in rows:
            table.add_row(str(row["license"]), row["node"] or "-", str(row["linked_at"] or "-"))
        ctx.emit({"licenses": rows}, table)


# ---- rewards --------------------------------------------------------------------------------

rewards_app = typer.Typer(help="Availability rewards: what the oracles signed, claims.")
SignaturesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--signatures",
        metavar="DIR",
        help="Oracle epoch files (repeatable); default: the local network's oracle nodes.",
    ),
]


BrokerOpt = Annotated[
    str | None,
    typer.Option(
        "--broker",
        metavar="URL",
        help="Ask the oracle nodes on this MQTT broker (default: the local network's, when "
        "its epoch files are not here).",
    ),
]
OracleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--oracle",
        metavar="ADDRESS",
        help="An oracle node's 0xai_ address to ask (repeatable); others are found by their "
        "heartbeats.",
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="S", min=0.1, help="Seconds to wait for the oracles' answers."
    ),
]


@dataclass
class Source:
    """Where the oracle signatures come from."""

    dirs: list[Path] | None
    broker: str | None
    oracles: list[str] | None
    timeout: float


def _reward_plan(ctx: Ctx, source: Source, epochs: list[int] | None = None) -> dict[str, Any]:
    from meshops.chain.rewards_claims import collect_signatures, plan_claims

    info = ctx.info
    if source.dirs:
        return plan_claims(ctx.layer, collect_signatures(source.dirs))
    local = [Path(n.home) / "epochs" for n in (info.nodes if info else [])]
    if source.broker is None and any(d.is_dir() for d in local):
        return plan_claims(ctx.layer, collect_signatures(local))
    broker = source.broker or (info.broker_url if info else None)
    if not broker:
        raise ConfigError(
            "no oracle signatures: pass --broker mqtt://HOST:PORT or --signatures DIR"
        )
    candidates = list(source.oracles or [])
    if info is not None and broker == info.broker_url:
        candidates += [n.address for n in info.nodes if n.address]
    signatures, rejected = _fetch(ctx, broker, candidates, source.timeout, epochs)
    return {**plan_claims(ctx.layer, signatures), "rejected_signatures": rejected}


def _fetch(
    ctx: Ctx, broker: str, candidates: list[str], timeout: float, epochs: list[int] | None
) -> tuple[Any, int]:
    """The linked nodes' signatures, asked of the oracle nodes on ``broker``, and how many
    signatures the oracles sent that did not verify."""
    from meshops.chain.rewards_claims import linked_nodes
    from meshops.sdk.claims import Query, fetch_signatures
    from meshops.sdk.keys import load_client_key

    layer = ctx.layer
    wanted = linked_nodes(layer)
    if epochs:
        low, high = min(epochs), max(epochs) + 1
        wanted = {n: (max(a, low), min(b, high)) for n, (a, b) in wanted.items()}
    queries = [Query(n, a, b) for n, (a, b) in wanted.items() if a < b]
    if not queries:
        return {}, 0
    result = fetch_signatures(
        broker,
        load_client_key(ctx.key_path),
        queries,
        oracles=layer.oracles(),
        threshold=layer.threshold(),
        chain_id=layer.deployment.chain_id,
        rewards=layer.deployment.rewards,
        timeout=timeout,
        candidates=candidates,
    )
    return result.signatures, result.rejected


def _warn_short(plan: dict[str, Any]) -> None:
    """Warnings on stderr, printed only once the command succeeded (errors are one line)."""
    if plan.get("rejected_signatures"):
        err.print(
            f"warning: {plan['rejected_signatures']} oracle signature(s) did not verify, ignored"
        )
    short = sorted({s["epoch"] for lic in plan["licenses"] for s in lic["short"]})
    if short:
        err.print(
            f"warning: fewer than {plan['threshold']} valid oracle signatures for epoch(s) "
            f"{', '.join(map(str, short))}",
            highlight=False,
        )


@rewards_app.command("status")
def rewards_status(
    signatures: SignaturesOpt = None,
    broker: BrokerOpt = None,
    oracle: OracleOpt = None,
    timeout: TimeoutOpt = 10.0,
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Per licence: the epochs the oracles signed, claimed or claimable, and their reward."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        plan = _reward_plan(ctx, Source(signatures, broker, oracle, timeout))
        _warn_short(plan)
        table = Table("licence", "node", "epoch", "availability", "reward", "state", box=None)
        for lic in plan["licenses"]:
            for epoch in lic["epochs"]:
                table.add_row(
                    str(lic["license"]),
                    lic["node"],
                    str(epoch["epoch"]),
                    str(epoch["availability"]),
                    show(epoch["reward"]),
                    "claimed" if epoch["claimed"] else "claimable",
                )
        summary = (
            f"current epoch {plan['current_epoch']}: {show(plan['claimable_reward'])} tokens "
            f"claimable over {plan['claimable_epochs']} epochs"
        )
        if ctx.as_json:
            ctx.emit(plan, table)
        else:
            out.print(table, soft_wrap=True)
            out.print(summary, soft_wrap=True)


@rewards_app.command("claim")
def rewards_claim(
    epoch: Annotated[
        list[int] | None,
        typer.Option("--epoch", min=0, help="Claim only this epoch (repeatable)."),
    ] = None,
    license_id: Annotated[
        int | None, typer.Option("--license", min=1, help="Claim only for this licence.")
    ] = None,
    signatures: SignaturesOpt = None,
    broker: BrokerOpt = None,
    oracle: OracleOpt = None,
    timeout: TimeoutOpt = 10.0,
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Claim the rewards the oracles signed (all claimable epochs, or --epoch ones).

    An --epoch that is already claimed, not ended, or has too few oracle signatures is an error.
    """
    from meshops.chain.rewards_claims import claim

    with opened(home, chain, deployment, key, as_json) as ctx:
        plan = _reward_plan(ctx, Source(signatures, broker, oracle, timeout), epoch)
        paid = claim(ctx.layer, plan, epochs=epoch, license_id=license_id)
        if not epoch:
            _warn_short(plan)
        total = sum(p["paid"] for p in paid)
        ctx.emit(
            {"claims": paid, "total": total, "balance": ctx.layer.token.balance_of()},
            f"claimed {show(total)} tokens for {len(paid)} epoch(s)",
        )


# ---- escrow ---------------------------------------------------------------------------------

escrow_app = typer.Typer(help="Job escrow: lock a job's price, look at it, cancel it.")


@escrow_app.command("create")
def escrow_create(
    price: Annotated[str, typer.Argument(metavar="PRICE", help="Tokens to lock, e.g. 50 or 2.5.")],
    deadline: Annotated[
        int, typer.Option("--deadline", min=1, help="Seconds from now until it can expire.")
    ] = 3600,
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Lock PRICE tokens for a job; prints the job id."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        amount = tokens(price)
        ends = ctx.layer.client.block_timestamp() + deadline
        job = ctx.layer.escrow.create_job(amount, ends)
        ctx.emit(
            {"job": job, "price": amount, "deadline": ends},
            f"job {job}: {show(amount)} tokens locked until {ends}",
        )


def _job_dict(info: Any) -> dict[str, Any]:
    return {
        "job": info.job_id,
        "client": info.client,
        "status": info.status.name.lower(),
        "price": info.price,
        "attested": info.attested,
        "rounds": info.rounds,
        "deadline": info.deadline,
    }


@escrow_app.command("status")
def escrow_status(
    job: Annotated[int, typer.Argument(metavar="JOB", min=1, help="Job id.")],
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a job's escrow: status, price, attested so far."""
    from meshops.chain import JobStatus

    with opened(home, chain, deployment, key, as_json) as ctx:
        info = ctx.layer.escrow.job(job)
        if info.status == JobStatus.NONE:
            raise ConfigError(f"job {job} does not exist")
        data = _job_dict(info)
        table = Table("job", "status", "price", "attested", "client", box=None)
        table.add_row(str(job), data["status"], show(info.price), show(info.attested), info.client)
        ctx.emit(data, table)


@escrow_app.command("cancel")
def escrow_cancel(
    job: Annotated[int, typer.Argument(metavar="JOB", min=1, help="Job id.")],
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel an open job (its client only); what was not attested is refunded."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        refund = ctx.layer.escrow.cancel(job)
        ctx.emit({"job": job, "refund": refund}, f"job {job} cancelled, {show(refund)} refunded")


def _eth_of(node: str, info: NetworkInfo | None) -> str:
    """A node's Ethereum address from an 0x address, an 0xai_ address or a local alias."""
    from eth_utils import is_address as is_eth_address
    from eth_utils import to_checksum_address

    from meshops.protocol import eth_address_of, is_address

    if is_eth_address(node):
        return to_checksum_address(node)
    if is_address(node):
        return eth_address_of(node)
    if info is not None:
        for local in info.nodes:
            if local.alias == node and local.eth:
                return to_checksum_address(local.eth)
    raise ConfigError(f"{node!r} is not an address nor a node of the local network")


def _oracle_keys(given: list[str], ctx: Ctx) -> list[Any]:
    """The oracle keys that sign: ``--oracle`` key files or aliases, else every local network
    node whose key is in the on-chain oracle set (k of them are enough)."""
    keys = [_node_key(o, ctx.info) for o in given]
    if not keys and ctx.info is not None:
        keys = [
            _node_key(n.alias, ctx.info) for n in ctx.info.nodes if n.role != "chain" and n.home
        ]
    oracles = {o.lower() for o in ctx.layer.oracles()}
    keys = [k for k in keys if k.eth_address.lower() in oracles]
    needed = ctx.layer.threshold()
    if len(keys) < needed:
        raise ConfigError(
            f"{needed} oracle signatures are needed, and only {len(keys)} oracle key(s) are at "
            "hand: pass --oracle KEYFILE (repeatable)"
        )
    return keys[:needed]


@escrow_app.command("attest")
def escrow_attest(
    job: Annotated[int, typer.Argument(metavar="JOB", min=1, help="Job id.")],
    pay: Annotated[
        list[str],
        typer.Option("--pay", metavar="NODE=TOKENS", help="Credit a node (repeatable)."),
    ],
    final: Annotated[
        bool, typer.Option("--final", help="Complete the job; the rest goes back to its client.")
    ] = False,
    oracle: Annotated[
        list[str] | None,
        typer.Option("--oracle", help="An oracle's key file or local alias (repeatable)."),
    ] = None,
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Attest verified work with k oracle signatures: the nodes named are credited (for
    oracle operators; on `meshops up` the local oracle nodes sign)."""
    from meshops.chain.oracle import sign_attestation

    with opened(home, chain, deployment, key, as_json) as ctx:
        nodes, amounts = [], []
        for item in pay:
            node, sep, amount = item.partition("=")
            if not sep:
                raise ConfigError(f"--pay {item!r}: expected NODE=TOKENS")
            nodes.append(_eth_of(node.strip(), ctx.info))
            amounts.append(tokens(amount.strip()))
        layer = ctx.layer
        round_ = layer.escrow.job(job).rounds
        signatures = [
            sign_attestation(
                oracle_key,
                layer.deployment.chain_id,
                layer.deployment.escrow,
                job,
                round_,
                final,
                nodes,
                amounts,
            )
            for oracle_key in _oracle_keys(oracle or [], ctx)
        ]
        layer.escrow.attest(job, round_, final, nodes, amounts, signatures)
        info = layer.escrow.job(job)
        ctx.emit(
            {
                "job": job,
                "round": round_,
                "final": final,
                "nodes": nodes,
                "amounts": amounts,
                **_job_dict(info),
            },
            f"job {job} round {round_}: credited "
            + ", ".join(f"{n} {show(a)}" for n, a in zip(nodes, amounts, strict=True))
            + (f"; job {info.status.name.lower()}, the rest refunded" if final else ""),
        )


@escrow_app.command("withdraw")
def escrow_withdraw(
    job: Annotated[int, typer.Argument(metavar="JOB", min=1, help="Job id.")],
    node: Annotated[
        str | None,
        typer.Option("--node", help="Withdraw as this node (key file or local alias)."),
    ] = None,
    home: HomeOpt = UP_HOME,
    chain: ChainOpt = None,
    deployment: DeploymentOpt = None,
    key: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collect what was attested to an account (default --key's; --node for a node's)."""
    with opened(home, chain, deployment, key, as_json) as ctx:
        layer = ctx.layer if node is None else ctx.layer.as_account(_node_key(node, ctx.info))
        amount = layer.escrow.withdraw(job)
        ctx.emit(
            {"job": job, "account": layer.address, "amount": amount},
            f"{layer.address} withdrew {show(amount)} tokens from job {job}",
        )
