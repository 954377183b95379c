"""Video analytics: a generated video -> FACE_DETECT_01 on a node -> counts and alerts.

Run against ``meshops up``::

    python examples/video_analytics/run.py [--broker mqtt://127.0.0.1:1883] [--node worker-1]

It writes a short video with OpenCV (moving ArUco markers, 0 to 3 per frame), deploys a
``VideoFile`` pipeline on the node with the ``FACE_DETECT_01`` plugin (``DETECTOR: aruco``,
see README.md for why not faces), prints one line per frame with the count and the alerts,
then closes the pipeline and prints a summary line.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from meshops.sdk import Session

PIPELINE = "video_analytics"
WIDTH, HEIGHT, MARKER = 480, 360, 96


def markers_in(frame_no: int, frames: int) -> int:
    """How many markers frame ``frame_no`` shows: 1, 2, 3 then 0, a quarter each."""
    return (1, 2, 3, 0)[min(4 * frame_no // frames, 3)]


def make_video(path: Path, seconds: float, fps: int) -> int:
    """Write the demo video; returns its frame count."""
    frames = int(seconds * fps)
    dictionary = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    tiles = [cv2.aruco.generateImageMarker(dictionary, i, MARKER) for i in range(3)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path}")
    try:
        for n in range(frames):
            frame = np.full((HEIGHT, WIDTH, 3), 235, np.uint8)
            for i in range(markers_in(n, frames)):
                x = 20 + i * 150 + (n % 10) * 3  # drift a little, frame to frame
                y = 60 + (i % 2) * 140
                pad = 12  # a white quiet zone around each marker
                frame[y - pad : y + MARKER + pad, x - pad : x + MARKER + pad] = 255
                frame[y : y + MARKER, x : x + MARKER] = tiles[i][..., None]
            cv2.putText(frame, f"frame {n + 1}", (10, HEIGHT - 12), 0, 0.6, (80, 80, 80), 1)
            writer.write(frame)
    finally:
        writer.release()
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--node", default="worker-1", help="alias or address of the node")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the video")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--alert-at", type=int, default=3, help="ALERT when this many found")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="meshops-video-"))
    video = workdir / "demo.avi"
    frames = make_video(video, args.seconds, args.fps)
    print(f"video: {video} ({frames} frames, {args.fps} fps)", flush=True)

    seen = alerts = detections = 0
    with Session(args.broker) as session:
        node = session.wait_for_node(args.node, timeout=args.timeout)
        stream = session.stream(node, pipeline=PIPELINE, timeout=args.timeout)
        pipeline = session.deploy(
            node,
            PIPELINE,
            "VideoFile",
            capture={"URL": str(video), "CAP_RESOLUTION": args.fps * 2},
            plugins=[
                {
                    "signature": "FACE_DETECT_01",
                    "instance_id": "detector",
                    "DETECTOR": "aruco",
                    "ALERT_AT": args.alert_at,
                }
            ],
            timeout=args.timeout,
        )
        print(f"deployed {PIPELINE} on {node.alias}", flush=True)
        try:
            deadline = time.monotonic() + args.timeout
            while seen < frames and time.monotonic() < deadline:
                payload = stream.get(timeout=max(deadline - time.monotonic(), 0.1))
                if payload is None:
                    break
                if payload.get("IS_ERROR") or payload.get("ERROR"):
                    print(f"error from the node: {payload.get('ERROR')}", flush=True)
                    return 1
                if "COUNT" not in payload.data:
                    continue
                seen += 1
                detections += payload["COUNT"]
                alerts += bool(payload["ALERT"])
                flag = "  ALERT" if payload["ALERT"] else ""
                print(
                    f"frame {payload.get('FRAME'):>3}: count={payload['COUNT']}{flag}", flush=True
                )
        finally:
            stream.close()
            pipeline.close()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"summary: frames={seen}/{frames} detections={detections} alerts={alerts}", flush=True)
    return 0 if seen == frames else 1


if __name__ == "__main__":
    sys.exit(main())
