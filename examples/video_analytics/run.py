"""Video analytics: a generated video -> FACE_DETECT_01 on a node -> counts and alerts.

Run against ``meshops up``::

    python examples/video_analytics/run.py [--broker mqtt://127.0.0.1:1883] [--node worker-1]

It writes a short video with OpenCV (a real portrait, 0 to 3 copies per frame, drifting),
deploys a ``VideoFile`` pipeline on the node with the ``FACE_DETECT_01`` plugin (OpenCV's
bundled Haar frontal-face cascade), prints one line per frame with the count and the alerts,
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
import matplotlib
import numpy as np

from meshops.sdk import Session

PIPELINE = "video_analytics"
WIDTH, HEIGHT = 720, 320


def faces_in(frame_no: int, frames: int) -> int:
    """How many faces frame ``frame_no`` shows: 1, 2, 3 then 0, a quarter each."""
    return (1, 2, 3, 0)[min(4 * frame_no // frames, 3)]


def portrait() -> np.ndarray:
    """A real face: the portrait of Grace Hopper that matplotlib ships, scaled to 204x240."""
    path = Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    image = cv2.imread(str(path))
    if image is None:
        raise SystemExit(f"cannot read the sample portrait {path}")
    return cv2.resize(image, (image.shape[1] * 2 // 5, image.shape[0] * 2 // 5))


def make_video(path: Path, seconds: float, fps: int) -> int:
    """Write the demo video; returns its frame count."""
    frames = int(seconds * fps)
    tile = portrait()
    height, width = tile.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path}")
    try:
        for n in range(frames):
            frame = np.full((HEIGHT, WIDTH, 3), 60, np.uint8)
            for i in range(faces_in(n, frames)):
                x = 10 + i * (width + 20) + (n % 10) * 3  # drift a little, frame to frame
                y = 30 + (n % 10) * 2
                frame[y : y + height, x : x + width] = tile
            cv2.putText(frame, f"frame {n + 1}", (10, HEIGHT - 12), 0, 0.6, (200, 200, 200), 1)
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
                frame_no = int(payload.get("FRAME") or seen)
                shown = faces_in(frame_no - 1, frames)
                print(
                    f"frame {frame_no:>3}: count={payload['COUNT']} shown={shown}{flag}", flush=True
                )
        finally:
            stream.close()
            pipeline.close()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"summary: frames={seen}/{frames} detections={detections} alerts={alerts}", flush=True)
    return 0 if seen == frames else 1


if __name__ == "__main__":
    sys.exit(main())
