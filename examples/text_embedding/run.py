"""Text embeddings in a pipeline: sentences -> all-MiniLM-L6-v2 -> nearest earlier sentence.

Run against ``meshops up``, once the model is in its registry::

    meshops models prepare minilm                  # exports the real model, offline (once)
    python examples/text_embedding/run.py [--broker mqtt://127.0.0.1:1883] [--file F.jsonl]

Without ``--file`` it writes a few support tickets as JSON lines (``{"TEXT": ...}``), some of
them paraphrases of earlier ones. It deploys a ``StructuredFile`` pipeline with the
``TEXT_EMBED_01`` plugin on the node (the model runs in the node's model server, tokenized
with ``tokenizers``, no torch), and prints for each text the most similar earlier one and
the cosine similarity; ``SIMILAR`` marks likely duplicates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from meshops.sdk import Session

PIPELINE = "text_embedding"
TICKETS = [
    "My invoice shows the wrong amount.",
    "The app crashes when I open the camera.",
    "How do I reset my password?",
    "I was charged an incorrect sum on my bill.",
    "The weather in Lisbon is lovely in spring.",
    "I forgot my password and cannot log in.",
    "Opening the camera makes the application crash.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--node", default="worker-1", help="alias or address of the node")
    parser.add_argument("--file", type=Path, help='JSON lines with {"TEXT": ...}')
    parser.add_argument("--threshold", type=float, default=0.6, help="SIMILAR from this cosine")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    workdir = None
    if args.file is None:
        workdir = Path(tempfile.mkdtemp(prefix="meshops-text-"))
        path = workdir / "tickets.jsonl"
        path.write_text("".join(json.dumps({"TEXT": t}) + "\n" for t in TICKETS))
    else:
        path = args.file.expanduser().resolve()
    count = sum(1 for line in path.read_text().splitlines() if line.strip())
    print(f"texts: {path} ({count} lines)", flush=True)

    seen = similar = 0
    try:
        with Session(args.broker) as session:
            node = session.wait_for_node(args.node, timeout=args.timeout)
            stream = session.stream(node, pipeline=PIPELINE, timeout=args.timeout)
            pipeline = session.deploy(
                node,
                PIPELINE,
                "StructuredFile",
                capture={"URL": str(path), "CAP_RESOLUTION": 20},
                plugins=[
                    {
                        "signature": "TEXT_EMBED_01",
                        "instance_id": "embedder",
                        "THRESHOLD": args.threshold,
                    }
                ],
                timeout=args.timeout,
            )
            print(f"deployed {PIPELINE} on {node.alias}", flush=True)
            try:
                deadline = time.monotonic() + args.timeout
                while seen < count and time.monotonic() < deadline:
                    payload = stream.get(timeout=max(deadline - time.monotonic(), 0.1))
                    if payload is None:
                        break
                    if payload.get("IS_ERROR"):
                        print(f"error from the node: {payload.get('ERROR')}", flush=True)
                        return 1
                    if "TEXT" not in payload.data:
                        continue
                    seen += 1
                    line = f"[{seen}] {payload['TEXT']}"
                    if payload.get("NEAREST"):
                        mark = "  SIMILAR" if payload.get("SIMILAR") else ""
                        score = payload["SIMILARITY"]
                        line += f"\n     nearest: {payload['NEAREST']} ({score:.2f}){mark}"
                        similar += bool(payload.get("SIMILAR"))
                    print(line, flush=True)
            finally:
                stream.close()
                pipeline.close()
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"summary: texts={seen}/{count} similar={similar}", flush=True)
    return 0 if seen == count else 1


if __name__ == "__main__":
    sys.exit(main())
