"""A reliable publisher run as a child process by ``test_reliability`` (so it can be SIGKILLed).

    python -m tests.transport.reliable_peer PORT OUTBOX TOTAL [PACE_S]

It continues the stream where the outbox left it (message ``I`` = its stream seq),
prints the first seq it sends, and exits 0 once the receiver acknowledged everything.
"""

from __future__ import annotations

import logging
import sys
import time

from meshops.protocol.constants import Topics
from meshops.transport import MqttTransport, Outbox, ReliableSender

from .helpers import json_decode, json_encoder

PUB, SUB = "0xai_publisher", "0xai_receiver"
DATA_TOPIC = Topics().payloads_for(SUB)


def main(argv: list[str]) -> int:
    port, outbox_path, total = int(argv[0]), argv[1], int(argv[2])
    pace = float(argv[3]) if len(argv) > 3 else 0.0
    encode = json_encoder(PUB)
    with Outbox(outbox_path) as outbox:
        transport = MqttTransport("127.0.0.1", port, "reliable-peer", outbox=outbox)
        sender = ReliableSender(transport, outbox, PUB, json_decode)
        transport.start(timeout=10)
        sender.start()
        try:
            state = outbox.stream(SUB)
            first = state.next_seq if state else 1
            print(first, flush=True)
            for i in range(first, total + 1):
                sender.send(SUB, DATA_TOPIC, lambda h, i=i: encode(SUB, {"I": i, **h}))
                if pace and i % 50 == 0:
                    time.sleep(pace)
            return 0 if sender.wait_acked(60) else 1
        finally:
            sender.stop()
            transport.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
