"""Sensor anomaly detection: MQTT readings -> IotQueueListener -> ZSCORE_ALERT_01 -> alerts.

Run against ``meshops up``::

    python examples/sensor_anomaly/run.py [--broker mqtt://127.0.0.1:1883] [--node worker-1]

It deploys an ``IotQueueListener`` pipeline on the node that subscribes to the sensor topic
on the same broker, with the ``ZSCORE_ALERT_01`` plugin; starts ``publisher.py`` (a sine
wave with spikes); prints every alert (and the plugin's summaries) until ``--alerts`` alerts
arrived or ``--timeout`` passed; then stops the publisher and closes the pipeline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from meshops.sdk import Session

PIPELINE = "sensor_anomaly"
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--node", default="worker-1", help="alias or address of the node")
    parser.add_argument("--topic", default="meshops/examples/sensor")
    parser.add_argument("--alerts", type=int, default=4, help="stop after this many alerts")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--window", type=int, default=40)
    parser.add_argument("--threshold", type=float, default=4.0)
    args = parser.parse_args(argv)

    url = urlparse(args.broker)
    alerts = true_alerts = 0
    with Session(args.broker) as session:
        node = session.wait_for_node(args.node, timeout=args.timeout)
        stream = session.stream(node, pipeline=PIPELINE, timeout=args.timeout)
        pipeline = session.deploy(
            node,
            PIPELINE,
            "IotQueueListener",
            capture={
                "HOST": url.hostname or "127.0.0.1",
                "PORT": url.port or 1883,
                "TOPIC": args.topic,
            },
            plugins=[
                {
                    "signature": "ZSCORE_ALERT_01",
                    "instance_id": "zscore",
                    "FIELD": "VALUE",
                    "WINDOW": args.window,
                    "THRESHOLD": args.threshold,
                    "SUMMARY_EVERY": 100,
                }
            ],
            timeout=args.timeout,
        )
        print(f"deployed {PIPELINE} on {node.alias}, listening on {args.topic}", flush=True)
        publisher = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "publisher.py"),
                "--broker",
                args.broker,
                "--topic",
                args.topic,
            ],
        )
        try:
            deadline = time.monotonic() + args.timeout
            while alerts < args.alerts and time.monotonic() < deadline:
                payload = stream.get(timeout=max(deadline - time.monotonic(), 0.1))
                if payload is None:
                    break
                if payload.get("IS_ERROR"):
                    print(f"error from the node: {payload.get('ERROR')}", flush=True)
                    return 1
                if payload.get("SUMMARY"):
                    print(
                        f"summary: seen={payload['SEEN']} alerts={payload['ALERTS']} "
                        f"mean={payload['MEAN']:.2f} std={payload['STD']:.2f}",
                        flush=True,
                    )
                elif payload.get("ALERT"):
                    alerts += 1
                    data = payload.get("DATA") or {}
                    true_alerts += bool(data.get("SPIKE"))
                    print(
                        f"ALERT #{alerts}: seq={data.get('SEQ')} value={payload['VALUE']:.2f} "
                        f"z={payload['ZSCORE']:+.1f} (injected spike: {bool(data.get('SPIKE'))})",
                        flush=True,
                    )
        finally:
            publisher.terminate()
            publisher.wait(10)
            stream.close()
            pipeline.close()
    print(f"done: alerts={alerts} injected={true_alerts}", flush=True)
    return 0 if alerts >= args.alerts else 1


if __name__ == "__main__":
    sys.exit(main())
