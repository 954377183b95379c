"""Signed MeshOps messaging versus raw paho-mqtt, on the same Mosquitto, in the same run.

For each payload size (200 B, 10 KB) and QoS (0, 1) it measures:
- round trip: A publishes, B answers, A receives (p50/p95 over many pings);
- one-way throughput: A publishes N messages as fast as it can, B (another process, as it
  would be another machine) receives all of them; messages per second until the last arrives.

Raw: paho-mqtt clients sending the payload bytes (TCP_NODELAY set on both, as MeshOps does,
so the comparison is of the messaging layer, not of Nagle's algorithm).
MeshOps: every message is a full protocol envelope, signed by the sender (secp256k1 + EIP-191)
and verified by the receiver (hash, signature, replay, freshness), sent through MqttTransport.

Prints a table, then one JSON line with the medians and the ratios MeshOps/raw.
Run: .venv/bin/python bench/messaging.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from meshops.protocol import Envelope, MemoryReplayGuard, NodeKey, parse_message
from meshops.protocol.constants import EventType
from meshops.transport import MosquittoBroker, MqttTransport

PING, PONG = "bench/ping", "bench/pong"


class RawPeer:
    """A plain paho client with TCP_NODELAY, calling ``handler`` on the network thread."""

    def __init__(self, port: int, name: str, subscribe: str, handler: Callable[[bytes], None]):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_socket_open = lambda c, u, s: s.setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        self.client.on_message = lambda c, u, m: handler(m.payload)
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(subscribe, qos=1)
        if not ready.wait(10):
            raise RuntimeError(f"{name}: subscription not confirmed")

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.client.publish(topic, payload, qos=qos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class MeshPeer:
    """A MeshOps transport plus a signing envelope and a verifying parser."""

    def __init__(self, port: int, name: str, subscribe: str, handler: Callable[[object], None]):
        self.key = NodeKey.generate()
        self.envelope = Envelope(self.key, alias=name)
        self.guard = MemoryReplayGuard()
        self.transport = MqttTransport(
            "127.0.0.1", port, client_id=name, on_message=self._on_message
        )
        self._handler = handler
        self.transport.subscribe(subscribe, qos=1)
        self.transport.start(timeout=10)

    def _on_message(self, topic: str, payload: bytes) -> None:
        self._handler(parse_message(payload, replay_guard=self.guard))

    def send(self, topic: str, body: dict, qos: int) -> None:
        data = self.envelope.encode(EventType.PAYLOAD, body)
        self.transport.publish(topic, data, qos=qos, durable=False)

    def close(self) -> None:
        self.transport.stop(timeout=10)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def round_trip(make_pair, send, n: int) -> dict:
    """Ping-pong ``n`` times after a warm-up; returns p50/p95 in milliseconds."""
    got = threading.Event()
    a, b, ping = make_pair(got)
    try:
        samples = []
        for i in range(n + 20):
            got.clear()
            t0 = time.perf_counter()
            send(a, ping, i)
            if not got.wait(5):
                raise RuntimeError("round trip timed out")
            if i >= 20:
                samples.append((time.perf_counter() - t0) * 1000)
    finally:
        a.close()
        b.close()
    return {"p50_ms": statistics.median(samples), "p95_ms": _pct(samples, 0.95)}


def _receive(kind: str, port: int, total: int, conn) -> None:
    """Child process: count ``total`` messages (MeshOps: each verified), send the last's time."""
    done = threading.Event()
    count = [0]
    last = [0.0]

    def on_msg(_: object) -> None:
        count[0] += 1
        if count[0] == total:
            last[0] = time.time()
            done.set()

    peer = (RawPeer if kind == "raw" else MeshPeer)(port, f"{kind}-rx-{os.getpid()}", PING, on_msg)
    conn.send("ready")
    try:
        conn.send(last[0] if done.wait(170) else f"{kind}: only {count[0]}/{total} arrived")
    finally:
        peer.close()


def run(port: int, size: int, qos: int, n_rt: int, n_tp: int) -> dict:
    data = b"x" * size
    body = {"DATA": "x" * size}

    # --- raw round trip
    def raw_pair(got):
        b_holder = {}
        b = RawPeer(
            port, f"raw-b-{size}-{qos}", PING, lambda p: b_holder["b"].publish(PONG, p, qos)
        )
        b_holder["b"] = b
        a = RawPeer(port, f"raw-a-{size}-{qos}", PONG, lambda p: got.set())
        return a, b, data

    raw_rt = round_trip(raw_pair, lambda a, p, i: a.publish(PING, p, qos), n_rt)

    # --- MeshOps round trip: every leg signed and verified
    def mesh_pair(got):
        b_holder = {}
        b = MeshPeer(
            port,
            f"mesh-b-{size}-{qos}",
            PING,
            lambda m: b_holder["b"].send(PONG, {"DATA": m.body["DATA"]}, qos),
        )
        b_holder["b"] = b
        a = MeshPeer(port, f"mesh-a-{size}-{qos}", PONG, lambda m: got.set())
        return a, b, body

    mesh_rt = round_trip(mesh_pair, lambda a, p, i: a.send(PING, p, qos), n_rt)

    # --- throughput: the receiver runs in its own process, as it would on another machine
    def throughput(kind: str, make_sender, send) -> float:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        rx = ctx.Process(target=_receive, args=(kind, port, n_tp, child), daemon=True)
        rx.start()
        try:
            if not parent.poll(30) or parent.recv() != "ready":
                raise RuntimeError(f"{kind} receiver did not start")
            tx = make_sender()
            try:
                t0 = time.time()
                for i in range(n_tp):
                    send(tx, i)
                if not parent.poll(180):
                    raise RuntimeError(f"{kind} throughput: not all {n_tp} arrived")
                result = parent.recv()
                if isinstance(result, str):
                    raise RuntimeError(result)
                return n_tp / (result - t0)
            finally:
                tx.close()
        finally:
            rx.join(30)
            if rx.is_alive():
                rx.kill()

    raw_tp = throughput(
        "raw",
        lambda: RawPeer(port, f"raw-tx-{size}-{qos}", "bench/none", lambda p: None),
        lambda tx, i: tx.publish(PING, data, qos),
    )
    mesh_tp = throughput(
        "mesh",
        lambda: MeshPeer(port, f"mesh-tx-{size}-{qos}", "bench/none", lambda m: None),
        lambda tx, i: tx.send(PING, body, qos),
    )
    return {
        "size": size,
        "qos": qos,
        "raw_rt_p50_ms": raw_rt["p50_ms"],
        "raw_rt_p95_ms": raw_rt["p95_ms"],
        "mesh_rt_p50_ms": mesh_rt["p50_ms"],
        "mesh_rt_p95_ms": mesh_rt["p95_ms"],
        "raw_msgs_per_s": raw_tp,
        "mesh_msgs_per_s": mesh_tp,
        "rt_p50_delta_ms": mesh_rt["p50_ms"] - raw_rt["p50_ms"],
        "throughput_ratio": mesh_tp / raw_tp,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    n_rt, n_tp = (100, 1000) if args.quick else (1000, 10000)

    rows = []
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(workdir=Path(tmp)) as broker:
        for size in (200, 10_000):
            for qos in (0, 1):
                rows.append(run(broker.port, size, qos, n_rt, n_tp if size == 200 else n_tp // 2))

    header = (
        f"{'size':>6} {'qos':>3} | {'raw p50':>8} {'mesh p50':>8} {'Δp50 ms':>8} | "
        f"{'raw msg/s':>10} {'mesh msg/s':>10} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['size']:>6} {r['qos']:>3} | "
            f"{r['raw_rt_p50_ms']:>8.3f} {r['mesh_rt_p50_ms']:>8.3f} "
            f"{r['rt_p50_delta_ms']:>8.3f} | {r['raw_msgs_per_s']:>10.0f} "
            f"{r['mesh_msgs_per_s']:>10.0f} {r['throughput_ratio']:>6.2f}"
        )
    summary = {
        "bench": "messaging",
        "rows": rows,
        "median_rt_p50_delta_ms": statistics.median(r["rt_p50_delta_ms"] for r in rows),
        "median_throughput_ratio": statistics.median(r["throughput_ratio"] for r in rows),
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
