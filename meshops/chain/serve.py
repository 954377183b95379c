"""Serve an embedded chain as its own process: ``python -m meshops.chain.serve``.

``meshops up`` starts the chain this way so that the nodes, the CLI and the tests share it
over JSON-RPC, and so that ``meshops down`` stops it like any other child. It runs until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from meshops.chain.embedded import EmbeddedChain
from meshops.chain.errors import ChainUnavailable

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshops.chain.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8545)
    parser.add_argument("--behind", type=int, default=0, help="start the clock N s behind")
    parser.add_argument("--block-time", type=float, default=1.0, help="empty block every S s")
    args = parser.parse_args(argv)
    chain = EmbeddedChain(
        args.host, args.port, behind_s=args.behind, block_time=args.block_time or None
    )
    try:
        chain.start()
    except ChainUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"embedded chain {chain.chain_id} at {chain.url}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        chain.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
