"""Custom code: one Python function run on every node this client may command.

Run against ``meshops up``::

    python examples/custom_code/run.py [--broker mqtt://127.0.0.1:1883] [--node ALIAS]

It waits for the nodes' heartbeats, keeps the ones that are online and allow this client
(``--node`` keeps only that one), runs ``node_stats`` on each with ``Session.run`` (in the
node's sandbox, through ``CUSTOM_EXEC_01``) and prints a table of the results.
"""

from __future__ import annotations

import argparse
import sys
import time

from meshops.sdk import Session
from meshops.sdk.errors import SdkError


def node_stats(plugin):
    """Runs ON THE NODE: only its body travels; ``plugin`` is the sandbox's plugin API."""
    np = plugin.np
    rng = np.random.default_rng(42)
    sample = rng.normal(loc=10.0, scale=2.0, size=10_000)
    started = plugin.time()
    product = np.linalg.norm(np.ones((200, 200)) @ np.ones((200, 200)))
    return {
        "NODE": plugin.node_id,
        "MEAN": round(float(sample.mean()), 4),
        "STD": round(float(sample.std()), 4),
        "P99": round(float(np.percentile(sample, 99)), 4),
        "NORM": round(float(product), 1),
        "MS": round((plugin.time() - started) * 1000, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--node", default=None, help="only this node (alias or address)")
    parser.add_argument(
        "--discover",
        type=float,
        default=6.0,
        help="seconds to listen for heartbeats before choosing the nodes",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per node")
    args = parser.parse_args(argv)

    with Session(args.broker) as session:
        if args.node:
            targets = [session.wait_for_node(args.node, timeout=args.timeout)]
        else:
            time.sleep(args.discover)  # nodes heartbeat every few seconds
            seen = session.nodes()
            targets = sorted(
                (n for n in seen if n.online and n.allowed), key=lambda n: n.alias or n.address
            )
            skipped = [n.alias or n.address for n in seen if n not in targets]
            print(
                f"nodes: {len(seen)} seen, {len(targets)} online and allowing us"
                + (f" (skipped: {', '.join(skipped)})" if skipped else ""),
                flush=True,
            )
        if not targets:
            print("no node to run on: is `meshops up` running?", flush=True)
            return 1
        rows, failed = [], 0
        for node in targets:
            try:
                result = session.run(node, node_stats, timeout=args.timeout)
                rows.append({**result, "ADDRESS": node.address})  # as the session verified it
            except SdkError as exc:
                failed += 1
                print(f"{node.alias}: failed: {exc}", flush=True)
    header = ("NODE", "MEAN", "STD", "P99", "NORM", "MS", "ADDRESS")
    table = [header, *[tuple(str(row.get(k)) for k in header) for row in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"done: {len(rows)} ok, {failed} failed", flush=True)
    return 0 if rows and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
