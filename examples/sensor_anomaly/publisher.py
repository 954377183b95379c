"""A fake sensor: a sine wave with injected spikes, published as JSON to an MQTT topic.

    python examples/sensor_anomaly/publisher.py [--broker mqtt://127.0.0.1:1883]
        [--topic meshops/examples/sensor] [--rate 20] [--spike-every 40] [--count 0]

Each message is ``{"SENSOR": "temp-1", "SEQ": n, "VALUE": v, "SPIKE": bool}``: ``VALUE`` is
``20 + 2 sin(n / 8)`` plus a little noise, and every ``--spike-every`` readings a spike of
+-``--spike`` (``SPIKE`` is the ground truth, for reading the demo's output). It runs until
``--count`` readings were sent (0: for ever) or it is interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from urllib.parse import urlparse

import paho.mqtt.client as mqtt

TOPIC = "meshops/examples/sensor"


def reading(n: int, spike_every: int, spike: float, rng: random.Random) -> dict:
    value = 20.0 + 2.0 * math.sin(n / 8.0) + rng.gauss(0.0, 0.1)
    is_spike = spike_every > 0 and n > 0 and n % spike_every == 0
    if is_spike:
        value += spike if (n // spike_every) % 2 else -spike
    return {"SENSOR": "temp-1", "SEQ": n, "VALUE": round(value, 4), "SPIKE": is_spike}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--topic", default=TOPIC)
    parser.add_argument("--rate", type=float, default=20.0, help="readings per second")
    parser.add_argument("--spike-every", type=int, default=40)
    parser.add_argument("--spike", type=float, default=12.0, help="size of a spike")
    parser.add_argument("--count", type=int, default=0, help="readings to send; 0: for ever")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    url = urlparse(args.broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sensor-{time.time_ns()}")
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    rng = random.Random(args.seed)
    n = 0
    try:
        while args.count == 0 or n < args.count:
            body = reading(n, args.spike_every, args.spike, rng)
            client.publish(args.topic, json.dumps(body), qos=1)
            if body["SPIKE"]:
                print(f"published spike #{n}: {body['VALUE']}", flush=True)
            n += 1
            time.sleep(1.0 / args.rate)
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
