"""Frames travel to the model server through shared memory, not through the pipe.

Each engine client owns an ``Arena``: one shared-memory block it reuses (grown when a batch
needs more). Large arrays are copied into it once and the request carries only
``ShmRef(name, offset, shape, dtype)``; the server maps the same block and reads the arrays
in place. Small values (text, numbers, small arrays) go through the pipe as they are. A
client waits for its answer before it reuses its block, so nothing is overwritten in use.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

__all__ = ["INLINE_BYTES", "Arena", "ShmRef", "ShmReader"]

log = logging.getLogger(__name__)

INLINE_BYTES = 32 * 1024  # arrays smaller than this are cheaper to pickle
ALIGN = 64


@dataclass(frozen=True)
class ShmRef:
    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: str


class Arena:
    """A client's reusable shared-memory block (owned and unlinked by the node process)."""

    def __init__(self, capacity: int = 4 << 20) -> None:
        self._capacity = capacity
        self._shm: shared_memory.SharedMemory | None = None

    def pack(self, inputs: list[Any]) -> list[Any]:
        """``inputs`` with every large numpy array replaced by a ``ShmRef`` to its copy."""
        large = [x for x in inputs if isinstance(x, np.ndarray) and x.nbytes >= INLINE_BYTES]
        if not large:
            return list(inputs)
        needed = sum(_aligned(x.nbytes) for x in large)
        shm = self._ensure(needed)
        packed: list[Any] = []
        offset = 0
        for x in inputs:
            if isinstance(x, np.ndarray) and x.nbytes >= INLINE_BYTES:
                view = np.ndarray(x.shape, x.dtype, buffer=shm.buf, offset=offset)
                view[...] = x
                packed.append(ShmRef(shm.name, offset, tuple(x.shape), x.dtype.str))
                offset += _aligned(x.nbytes)
            else:
                packed.append(x)
        return packed

    def _ensure(self, needed: int) -> shared_memory.SharedMemory:
        if self._shm is not None and self._shm.size >= needed:
            return self._shm
        self.close()
        while self._capacity < needed:
            self._capacity *= 2
        self._shm = shared_memory.SharedMemory(create=True, size=self._capacity)
        return self._shm

    def close(self) -> None:
        if self._shm is not None:
            self._shm.close()
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
            self._shm = None


class ShmReader:
    """The server side: maps clients' blocks and reads arrays in place; ``trim`` unmaps the
    least recently used ones beyond ``keep`` at a safe moment."""

    def __init__(self, keep: int = 64) -> None:
        self._open: OrderedDict[str, shared_memory.SharedMemory] = OrderedDict()
        self._keep = keep

    def unpack(self, inputs: list[Any]) -> list[Any]:
        return [self._array(x) if isinstance(x, ShmRef) else x for x in inputs]

    def _array(self, ref: ShmRef) -> np.ndarray:
        shm = self._open.get(ref.name)
        if shm is None:
            shm = shared_memory.SharedMemory(name=ref.name)
            # The node owns (and unlinks) the block; this process only maps it. Python 3.11
            # registers every attached block with the resource tracker, which would unlink
            # it when this process exits: undo that registration.
            resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
            self._open[ref.name] = shm
        else:
            self._open.move_to_end(ref.name)
        return np.ndarray(ref.shape, np.dtype(ref.dtype), buffer=shm.buf, offset=ref.offset)

    def trim(self) -> None:
        """Unmap the least recently used blocks beyond ``keep``. Call it only when no array
        from ``unpack`` is alive (the server does, when no request is queued): numpy does not
        pin the mapping, so reading an unmapped block would crash the process."""
        while len(self._open) > self._keep:
            _, old = self._open.popitem(last=False)
            old.close()

    def close(self) -> None:
        for shm in self._open.values():
            try:
                shm.close()
            except BufferError:  # an array still points into it; the OS unmaps at exit
                log.debug("shared block %s still in use at close", shm.name)
        self._open.clear()


def _aligned(size: int) -> int:
    return (size + ALIGN - 1) // ALIGN * ALIGN
