"""Model serving: MeshOps pipelines versus a raw ONNX Runtime loop, same model, same images.

Model: EfficientNet-Lite0 (ImageNet, real weights, exported by ``meshops.serving.zoo``).
Inputs: the two photos scikit-learn ships, as 640 x 427 BGR frames, repeated.

(a) raw: one process, ``cv2.imread`` of the same image files the pipelines read +
    ``imagenet_preprocess`` + ``InferenceSession.run`` in a loop, for each batch size in
    --batches; the best batch size's throughput is the reference. Also shown: the same loop
    over frames already decoded in memory (no file reading), an upper bound. Latency: one
    image at a time (batch 1).
(b) one pipeline: a real node (``meshops node start``, its own process) on Mosquitto, an
    ``ImageFolder`` capture -> ``IMAGE_CLASSIFY_01`` -> the model server -> signed payloads
    received by an SDK session. Throughput: the capture floods the node, payloads counted at
    the client (first to last). Latency: capture -> payload at the client, with the capture
    paced at a third of that throughput (so no queue builds up).
(c) two pipelines sharing one server (same AI_ENGINE, same parameters), aggregate throughput;
    and, for memory, the same two pipelines on two separate servers (different parameters).

RSS: the raw process; the node process plus its model server processes.
Prints a table, then one JSON line with the ratios.
Run: .venv/bin/python bench/serving.py [--images 256] [--batches 1,4,8,16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
from sklearn.datasets import load_sample_image

from meshops.protocol import NodeKey
from meshops.sdk import Session
from meshops.serving import ModelRegistry
from meshops.serving.catalog import prepare_models
from meshops.transport import MosquittoBroker

MODEL = "efficientnet_lite0"


def frames() -> list[np.ndarray]:
    return [load_sample_image(n)[..., ::-1].copy() for n in ("china.jpg", "flower.jpg")]


def raw_child(model_path: str, folder: str, batches: list[int], images: int) -> None:
    """Runs in a fresh process: prints one JSON line with the raw numbers.

    Two loops per batch size: over frames already decoded in memory, and over the same image
    files the pipelines read (decode + preprocess + run), which is the like-for-like one."""
    import onnxruntime as ort

    from meshops.serving.zoo import imagenet_preprocess

    base = frames()
    files = sorted(Path(folder).iterdir())
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def loop(batch: int, load) -> float:
        started = time.perf_counter()
        done = 0
        while done < images:
            group = [load(done + i) for i in range(batch)]
            tensor = np.concatenate([imagenet_preprocess(f, bgr=True) for f in group])
            session.run(None, {name: tensor})
            done += batch
        return done / (time.perf_counter() - started)

    memory, from_files = {}, {}
    for batch in batches:
        session.run(None, {name: np.concatenate([imagenet_preprocess(base[0], bgr=True)] * batch)})
        memory[batch] = loop(batch, lambda i: base[i % 2])
        from_files[batch] = loop(batch, lambda i: cv2.imread(str(files[i % len(files)])))
    latencies = []
    for i in range(60):
        started = time.perf_counter()
        image = cv2.imread(str(files[i % len(files)]))
        session.run(None, {name: imagenet_preprocess(image, bgr=True)})
        latencies.append((time.perf_counter() - started) * 1000)
    rss = psutil.Process().memory_info().rss
    print(
        json.dumps({"memory": memory, "files": from_files, "latencies_ms": latencies, "rss": rss})
    )


def run_raw(model_path: Path, folder: Path, batches: list[int], images: int) -> dict:
    command = [sys.executable, __file__, "--raw-child", str(model_path), str(folder)]
    command += [",".join(map(str, batches)), str(images)]
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("memory", "files"):
        data[key] = {int(k): v for k, v in data[key].items()}
    return data


def tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


class Bench:
    def __init__(self, workdir: Path, registry: Path, broker_url: str) -> None:
        self.workdir = workdir
        self.key = NodeKey.generate()
        home = workdir / "node"
        env = {**os.environ, "MESHOPS_MODELS_DIR": str(registry)}
        cli = [sys.executable, "-m", "meshops.cli"]
        subprocess.run(
            [*cli, "node", "allow", self.key.address, "bench", "--home", str(home)],
            check=True,
            capture_output=True,
            env=env,
        )
        self.node = subprocess.Popen(
            [
                *cli,
                "node",
                "start",
                "--home",
                str(home),
                "--alias",
                "bench",
                "--broker",
                broker_url,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.session = Session(broker_url, key=self.key)
        self.session.wait_for_node("bench", timeout=30)
        self.folders: dict[int, Path] = {}

    def folder(self, images: int) -> Path:
        if images not in self.folders:
            folder = self.workdir / f"images-{images}"
            folder.mkdir()
            base = frames()
            for i in range(images):
                cv2.imwrite(str(folder / f"{i:05d}.png"), base[i % 2])
            self.folders[images] = folder
        return self.folders[images]

    def classify(self, name: str, folder: Path, rate: float, params: dict) -> None:
        self.session.deploy(
            "bench",
            name,
            "ImageFolder",
            capture={"URL": str(folder), "CAP_RESOLUTION": rate},
            plugins=[
                {
                    "signature": "IMAGE_CLASSIFY_01",
                    "instance_id": "classify",
                    "AI_ENGINE": MODEL,
                    "AI_ENGINE_PARAMS": params,
                    "PROCESS_DELAY": 0,
                }
            ],
            timeout=60,
        )

    def collect(self, stream, names: list[str], wanted: int) -> tuple[list, list, int]:
        arrivals: list[float] = []
        captured: list[float] = []
        rss = 0
        for payload in stream:
            if payload.pipeline in names and "LABEL" in payload.data:
                arrivals.append(time.time())
                captured.append(payload["CAPTURED_AT"])
                if len(arrivals) == wanted // 2:
                    rss = tree_rss(self.node.pid)
                if len(arrivals) >= wanted:
                    break
        return arrivals, captured, rss

    def warm(self, params: list[dict]) -> list[str]:
        """One small pipeline per parameter set: its server is loaded (and kept) before the
        measured pipelines start, so no measurement includes loading a model."""
        keepers = [f"warm{i}" for i in range(len(params))]
        stream = self.session.stream("bench", timeout=120)
        for name, engine_params in zip(keepers, params, strict=True):
            self.classify(name, self.folder(2), 10, engine_params)
        self.collect(stream, keepers, 2 * len(keepers))
        stream.close()
        return keepers

    def pipelines(self, names: list[str], images: int, rate: float, params: list[dict]) -> dict:
        """Deploy ``names`` (each its own ImageFolder over ``images`` files) and measure."""
        keepers = self.warm(list({json.dumps(p, sort_keys=True): p for p in params}.values()))
        stream = self.session.stream("bench", timeout=600)
        for name, engine_params in zip(names, params, strict=True):
            self.classify(name, self.folder(images), rate, engine_params)
        arrivals, captured, rss = self.collect(stream, names, images * len(names))
        stream.close()
        servers = sum(
            "meshops.serving.server" in " ".join(p.cmdline())
            for p in psutil.Process(self.node.pid).children(recursive=True)
        )
        for name in names + keepers:
            self.session.attach("bench", name, timeout=30).close(timeout=30)
        span = arrivals[-1] - min(captured)
        return {
            "throughput": len(arrivals) / span,
            "latencies_ms": [(a - c) * 1000 for a, c in zip(arrivals, captured, strict=True)],
            "rss": rss,
            "servers": servers,
        }

    def close(self) -> None:
        self.session.close()
        self.node.terminate()
        self.node.wait(30)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--raw-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_child:
        path, folder, batches, images = args.raw_child
        raw_child(path, folder, [int(b) for b in batches.split(",")], int(images))
        return
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="meshops-bench-serving-") as tmp:
        workdir = Path(tmp)
        registry = ModelRegistry(workdir / "models")
        started = time.perf_counter()
        (manifest,) = prepare_models(registry, [MODEL], work_dir=workdir / "exports")
        print(f"exported {manifest.ref} in {time.perf_counter() - started:.1f} s", flush=True)
        model_path = registry.files(manifest)["model"]

        broker = MosquittoBroker(workdir=workdir / "mosquitto").start(timeout=10)
        bench = Bench(workdir, registry.root, broker.url)
        raw = run_raw(model_path, bench.folder(args.images), batches, args.images)
        best_batch = max(raw["files"], key=raw["files"].get)
        raw_tp = raw["files"][best_batch]
        raw_memory_tp = max(raw["memory"].values())
        for key in ("memory", "files"):
            loops = ", ".join(f"b{b}={v:.1f}/s" for b, v in raw[key].items())
            print(f"raw ({key}): {loops}", flush=True)
        try:
            batch = {"MAX_BATCH": best_batch, "MAX_WAIT_MS": 5}
            one = bench.pipelines(["one"], args.images, 1000, [batch])
            paced = bench.pipelines(["paced"], 60, max(one["throughput"] / 3, 1), [batch])
            shared = bench.pipelines(["s1", "s2"], args.images // 2, 1000, [batch, batch])
            other = {**batch, "MAX_WAIT_MS": 6}  # different parameters: a second server
            separate = bench.pipelines(["p1", "p2"], args.images // 2, 1000, [batch, other])
        finally:
            bench.close()
            broker.stop()
        registry.close()

    rows = [
        ("raw ORT loop, frames in memory", raw_memory_tp, [], raw["rss"], 1),
        ("raw ORT loop, image files (best batch)", raw_tp, raw["latencies_ms"], raw["rss"], 1),
        ("MeshOps, one pipeline", one["throughput"], paced["latencies_ms"], one["rss"], 1),
        (
            "MeshOps, two pipelines, one server",
            shared["throughput"],
            [],
            shared["rss"],
            shared["servers"],
        ),
        (
            "MeshOps, two pipelines, two servers",
            separate["throughput"],
            [],
            separate["rss"],
            separate["servers"],
        ),
    ]
    print(f"\nEfficientNet-Lite0, {args.images} images, CPU, best raw batch size {best_batch}")
    print(f"{'setup':40} {'img/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'RSS MB':>8} {'servers':>8}")
    for name, tp, lat, rss, servers in rows:
        print(
            f"{name:40} {tp:8.1f} {pct(lat, 50):8.1f} {pct(lat, 95):8.1f} "
            f"{rss / 1e6:8.0f} {servers:8d}"
        )
    result = {
        "model": MODEL,
        "images": args.images,
        "best_batch": best_batch,
        "raw_per_s": round(raw_tp, 2),
        "raw_in_memory_per_s": round(raw_memory_tp, 2),
        "pipeline_vs_raw_in_memory": round(one["throughput"] / raw_memory_tp, 3),
        "pipeline_per_s": round(one["throughput"], 2),
        "shared_per_s": round(shared["throughput"], 2),
        "pipeline_vs_raw": round(one["throughput"] / raw_tp, 3),
        "shared_vs_raw": round(shared["throughput"] / raw_tp, 3),
        "raw_p50_ms": round(pct(raw["latencies_ms"], 50), 2),
        "pipeline_p50_ms": round(pct(paced["latencies_ms"], 50), 2),
        "pipeline_p95_ms": round(pct(paced["latencies_ms"], 95), 2),
        "shared_rss_mb": round(shared["rss"] / 1e6, 1),
        "separate_rss_mb": round(separate["rss"] / 1e6, 1),
        "shared_vs_separate_rss": round(shared["rss"] / separate["rss"], 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
