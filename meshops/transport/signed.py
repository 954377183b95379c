"""The signed codec: reliable streams over real protocol envelopes.

``ReliableSender``/``ReliableReceiver`` take their encoding as callables, so they stay
testable on plain JSON; a node or client plugs in this codec, which signs every stream
message and ack with its key (``meshops.protocol.Envelope``) and verifies everything it
receives (``parse_message``). An ack is therefore as unforgeable as the data it confirms:
a stranger cannot make a sender forget messages by acking them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from meshops.protocol import Envelope, EventType, ReplayGuard, parse_message

__all__ = ["SignedCodec"]


class SignedCodec:
    """Encode and verify reliable-stream traffic for one party (its ``Envelope``)."""

    def __init__(self, envelope: Envelope, replay_guard: ReplayGuard | None = None) -> None:
        self.envelope = envelope
        self.replay_guard = replay_guard

    @property
    def address(self) -> str:
        return self.envelope.key.address

    def decode(self, payload: bytes) -> tuple[str, dict[str, Any]]:
        """Verify (and decrypt) one message: ``(sender, body)``; MessageRefused if bad.

        Stream messages are exempt from the replay guard and time window (their sequence
        number guards them); anything else on the same topic gets both.
        """
        msg = parse_message(payload, own_key=self.envelope.key, replay_guard=self.replay_guard)
        return msg.sender, msg.body

    decode_ack = decode

    def encode_ack(self, dest: str, ack: dict[str, Any]) -> bytes:
        """A signed ack addressed to the stream's sender."""
        return self.envelope.encode(EventType.PAYLOAD, ack, dest=dest)

    def stream_message(
        self,
        dest: str,
        body: Mapping[str, Any],
        *,
        event_type: str = EventType.PAYLOAD,
        path: Sequence[str | None] | None = None,
        encrypt: bool = False,
    ) -> Callable[[dict[str, Any]], bytes]:
        """The ``build(header)`` a ``ReliableSender.send`` needs: the header in clear, signed."""

        def build(header: dict[str, Any]) -> bytes:
            return self.envelope.encode(
                event_type, body, path=path, dest=dest, encrypt=encrypt, extra=header
            )

        return build
