"""A reliable publisher run as a child process by ``test_reliability`` (so it can be SIGKILLed).

    python -m tests.transport.reliable_peer PORT OUTBOX KEY_PEM RECEIVER_ADDRESS TOTAL [PACE_S]

Every message is a signed protocol envelope (``SignedCodec``). It continues the stream where
the outbox left it (message ``I`` = its stream seq), prints the first seq it sends, and
exits 0 once the receiver acknowledged everything.
"""

from __future__ import annotations

import logging
import sys
import time

from meshops.protocol import Envelope, NodeKey
from meshops.protocol.constants import Topics
from meshops.transport import MqttTransport, Outbox, ReliableSender, SignedCodec


def data_topic(receiver: str) -> str:
    return Topics().payloads_for(receiver)


def main(argv: list[str]) -> int:
    port, outbox_path, key_path, dest, total = argv[0], argv[1], argv[2], argv[3], argv[4]
    pace = float(argv[5]) if len(argv) > 5 else 0.0
    codec = SignedCodec(Envelope(NodeKey.load(key_path), alias="publisher"))
    with Outbox(outbox_path) as outbox:
        transport = MqttTransport("127.0.0.1", int(port), "reliable-peer", outbox=outbox)
        sender = ReliableSender(transport, outbox, codec.address, codec.decode_ack)
        transport.start(timeout=10)
        sender.start()
        try:
            state = outbox.stream(dest)
            first = state.next_seq if state else 1
            print(first, flush=True)
            for i in range(first, int(total) + 1):
                sender.send(dest, data_topic(dest), codec.stream_message(dest, {"I": i}))
                if pace and i % 50 == 0:
                    time.sleep(pace)
            return 0 if sender.wait_acked(60) else 1
        finally:
            sender.stop()
            transport.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1:]))
