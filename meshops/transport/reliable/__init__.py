"""Reliable streams: messages to one receiver, kept until that receiver acknowledges them.

Why: a broker's PUBACK only says the broker holds the message. A broker killed with
SIGKILL, or restarted without persistence, loses messages it had acknowledged but not yet
delivered, and forgets every subscription. For messages addressed to one receiver that
must arrive (commands, results, federated-learning updates), the sender keeps each one
in its outbox until the *receiver* acknowledges it.

Design (go-back-N, cumulative acks):

1. Streams. A sender has one stream per destination: a random id (persisted in the
   outbox's ``streams`` table) and seqs 1, 2, 3, ... The seq is assigned inside the outbox
   transaction that stores the message, *before* the message is built, and the caller's
   ``build(header)`` embeds ``{"MESHOPS_STREAM": {"ID": id, "SEQ": n}}`` in the body, so
   the signature covers it and nobody can renumber a message.
2. Receiver. It delivers a stream message only if its seq is exactly the next expected
   one for ``(sender, stream id)``; duplicates and messages after a gap are dropped. The
   last delivered seq is committed to SQLite right after delivery, so duplicates are
   still recognised after a restart. Delivery is exactly once while the receiver runs;
   a receiver crash between delivering and committing redelivers that one message.
3. Acks. The receiver publishes cumulative acks ``{"MESHOPS_ACK": {"ID": id, "SEQ": n}}``
   (QoS 1, not stored) on ``Topics.acks_for(sender)``, coalesced: every ``ack_interval``
   (50 ms) or every ``ack_every`` deliveries. Duplicates and gaps mark the stream for a
   re-ack too, which tells a rewinding or restarted sender where the receiver stands.
   Acks are encoded (signed) and decoded (verified) by injected codecs; the sender takes
   an ack only from the stream's own destination and for its current stream id, so acks
   cannot be forged by a third party. A lost ack is repaired by the next one.
4. Sender. A named thread sends each stream in order, at most ``window`` messages beyond
   the last ack, through the transport (not through its outbox again: the message is
   already stored). On an ack it deletes everything up to the acked seq. It rewinds, i.e.
   resends from the oldest unacked message, after every reconnect and whenever no ack
   progress happened for ``ack_timeout`` (1.5 s, doubling while nothing progresses, reset
   by progress). A restarted sender reloads its streams and resumes from the last ack.
5. What it does not do. Broadcasts stay best-effort, and receivers that do not
   acknowledge (the reference SDK) are served by plain durable publishes (broker acks):
   the caller chooses. A receiver that loses its state database expects seq 1 again and
   stalls a stream whose early messages were already acknowledged; the sender logs that
   as an ack regression. Ordering holds within a stream, not across streams.
"""

from meshops.transport.reliable.receiver import ReliableReceiver
from meshops.transport.reliable.sender import ReliableSender
from meshops.transport.reliable.wire import (
    ACK_KEY,
    STREAM_KEY,
    AckDecoder,
    AckEncoder,
    Decoder,
    DeliverFn,
    ack_body,
    parse_ack,
    parse_stream_header,
    stream_header,
)

__all__ = [
    "ACK_KEY",
    "STREAM_KEY",
    "AckDecoder",
    "AckEncoder",
    "Decoder",
    "DeliverFn",
    "ReliableReceiver",
    "ReliableSender",
    "ack_body",
    "parse_ack",
    "parse_stream_header",
    "stream_header",
]
