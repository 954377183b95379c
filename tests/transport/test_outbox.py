"""The SQLite outbox: order, persistence across reopen, bounds, atomic stream numbering."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops.errors import TransportError
from meshops.transport import Outbox


def test_plain_messages_come_back_in_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        seqs = [box.append(f"t/{i}", b"p%d" % i, qos=i % 3) for i in range(10)]
        assert seqs == sorted(seqs)
        rows = box.pending(after=0, limit=100)
        assert [r.topic for r in rows] == [f"t/{i}" for i in range(10)]
        assert [r.qos for r in rows] == [i % 3 for i in range(10)]
        assert [r.seq for r in box.pending(after=seqs[4], limit=3)] == seqs[5:8]
        assert len(box) == 10


def test_messages_survive_reopen_and_deleted_ones_stay_deleted(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        seqs = [box.append("t", b"x" * i) for i in range(1, 6)]
        assert box.delete(seqs[:2]) == 2
    with Outbox(path) as box:
        assert len(box) == 3
        assert box.size_bytes == 3 + 4 + 5
        assert [r.seq for r in box.pending()] == seqs[2:]
        # seqs are never reused, even after everything was deleted
        box.delete(seqs[2:])
        assert box.append("t", b"new") > seqs[-1]


def test_full_outbox_raises_a_clear_error(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", max_messages=3, max_bytes=1000) as box:
        for _ in range(3):
            box.append("t", b"x")
        with pytest.raises(TransportError, match="full"):
            box.append("t", b"x")
        box.delete([r.seq for r in box.pending(limit=1)])
        box.append("t", b"x")  # room again
    with Outbox(tmp_path / "b.db", max_bytes=10) as box:
        box.append("t", b"12345")
        with pytest.raises(TransportError, match="full"):
            box.append("t", b"123456")


def test_a_second_owner_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        box.append("t", b"x")
        with pytest.raises(TransportError, match="another process"):
            Outbox(path, busy_timeout=0.1)
    with Outbox(path) as box:  # free again once closed
        assert len(box) == 1


def test_closed_outbox_raises(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.close()
    with pytest.raises(TransportError, match="closed"):
        box.append("t", b"x")


def test_stream_seq_is_assigned_before_build_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    seen: list[tuple[str, int]] = []

    def build(stream_id: str, seq: int) -> bytes:
        seen.append((stream_id, seq))
        return f"{stream_id}:{seq}".encode()

    with Outbox(path) as box:
        results = [box.append_stream("dest-a", "t/a", build) for _ in range(3)]
        box.append_stream("dest-b", "t/b", build)
        assert results == seen[:3]
        stream_id = results[0][0]
        assert [seq for _, seq in results] == [1, 2, 3]
        assert seen[3][0] != stream_id and seen[3][1] == 1  # one stream per destination
        rows = box.stream_messages("dest-a", 1, 10)
        assert [r.payload for r in rows] == [f"{stream_id}:{n}".encode() for n in (1, 2, 3)]
        assert box.pending() == []  # stream messages are not plain messages
    with Outbox(path) as box:
        assert box.append_stream("dest-a", "t/a", build) == (stream_id, 4)
        state = box.stream("dest-a")
        assert state is not None and state.next_seq == 5 and state.acked == 0


def test_failed_build_stores_nothing_and_consumes_no_seq(tmp_path: Path) -> None:
    def boom(stream_id: str, seq: int) -> bytes:
        raise RuntimeError("signing failed")

    with Outbox(tmp_path / "o.db") as box:
        box.append_stream("d", "t", lambda s, n: b"one")
        with pytest.raises(RuntimeError, match="signing failed"):
            box.append_stream("d", "t", boom)
        assert len(box) == 1
        assert box.append_stream("d", "t", lambda s, n: b"two")[1] == 2


def test_ack_stream_deletes_up_to_the_acked_seq(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        for _ in range(5):
            box.append_stream("d", "t", lambda s, n: b"x")
        assert box.ack_stream("d", 3) == 3
        assert [r.stream_seq for r in box.stream_messages("d", 1, 10)] == [4, 5]
        assert box.ack_stream("d", 2) == 0  # an older ack changes nothing
    with Outbox(path) as box:
        state = box.stream("d")
        assert state is not None and state.acked == 3
        assert len(box) == 2
