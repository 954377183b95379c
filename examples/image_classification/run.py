"""Image classification on a folder of images: ImageFolder -> EfficientNet-Lite0 -> labels.

Run against ``meshops up``, once the model is in its registry::

    meshops models prepare efficientnet_lite0      # exports the real model, offline (once)
    python examples/image_classification/run.py [--broker mqtt://127.0.0.1:1883] [--folder DIR]

Without ``--folder`` it writes the two photos scikit-learn ships (a Chinese palace, a daisy),
plus mirrored and shrunk copies, into a temporary folder. It deploys an ``ImageFolder``
pipeline with the ``IMAGE_CLASSIFY_01`` plugin on the node (the model runs in the node's model
server), prints one line per image from the node's verified payloads, closes the pipeline and
prints a summary.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
from sklearn.datasets import load_sample_image

from meshops.capture.image_folder import IMAGE_SUFFIXES
from meshops.sdk import Session

PIPELINE = "image_classification"


def sample_folder(folder: Path) -> int:
    """The two sample photos, mirrored and at half size too: 6 images."""
    for name in ("china.jpg", "flower.jpg"):
        bgr = load_sample_image(name)[..., ::-1]
        stem = name.split(".")[0]
        cv2.imwrite(str(folder / f"{stem}.png"), bgr)
        cv2.imwrite(str(folder / f"{stem}-mirrored.png"), bgr[:, ::-1])
        cv2.imwrite(str(folder / f"{stem}-small.png"), cv2.resize(bgr, None, fx=0.5, fy=0.5))
    return 6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--node", default="worker-1", help="alias or address of the node")
    parser.add_argument("--folder", type=Path, help="images to classify (default: samples)")
    parser.add_argument("--model", default="efficientnet_lite0", help="AI_ENGINE to use")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    workdir = None
    if args.folder is None:
        workdir = Path(tempfile.mkdtemp(prefix="meshops-images-"))
        folder, count = workdir, sample_folder(workdir)
    else:
        folder = args.folder.expanduser().resolve()
        count = sum(1 for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    print(f"folder: {folder} ({count} images)", flush=True)

    labels: dict[str, int] = {}
    seen = 0
    try:
        with Session(args.broker) as session:
            node = session.wait_for_node(args.node, timeout=args.timeout)
            stream = session.stream(node, pipeline=PIPELINE, timeout=args.timeout)
            pipeline = session.deploy(
                node,
                PIPELINE,
                "ImageFolder",
                capture={"URL": str(folder), "CAP_RESOLUTION": 20},
                plugins=[
                    {
                        "signature": "IMAGE_CLASSIFY_01",
                        "instance_id": "classifier",
                        "AI_ENGINE": args.model,
                    }
                ],
                timeout=args.timeout,
            )
            print(f"deployed {PIPELINE} on {node.alias} with {args.model}", flush=True)
            try:
                deadline = time.monotonic() + args.timeout
                while seen < count and time.monotonic() < deadline:
                    payload = stream.get(timeout=max(deadline - time.monotonic(), 0.1))
                    if payload is None:
                        break
                    if payload.get("IS_ERROR"):
                        print(f"error from the node: {payload.get('ERROR')}", flush=True)
                        return 1
                    if "LABEL" not in payload.data:
                        continue
                    seen += 1
                    labels[payload["LABEL"]] = labels.get(payload["LABEL"], 0) + 1
                    runner_up = payload["TOP"][1] if len(payload["TOP"]) > 1 else None
                    extra = f"  (then {runner_up[1]} {runner_up[2]:.2f})" if runner_up else ""
                    print(
                        f"{payload['FILE']:24} {payload['LABEL']} "
                        f"[{payload['CLASS_ID']}] {payload['SCORE']:.2f}{extra}",
                        flush=True,
                    )
            finally:
                stream.close()
                pipeline.close()
    finally:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = ", ".join(f"{label}={n}" for label, n in sorted(labels.items()))
    print(f"summary: images={seen}/{count} {summary}", flush=True)
    return 0 if seen == count else 1


if __name__ == "__main__":
    sys.exit(main())
