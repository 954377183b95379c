"""The wire form of custom code: ``CODE = base64(zlib level 9(UTF-8 source))``.

As the SDK's ``code_to_base64`` builds it. Decoding is bounded (the decompressed size is
capped before it is allocated, so a zip bomb costs nothing) and each failing layer gets
its own message, since the sender sees only that message.
"""

from __future__ import annotations

import base64
import binascii
import zlib

from meshops.plugins.sandbox._errors import CodePolicyError

__all__ = ["MAX_SOURCE_BYTES", "decode_code", "encode_code"]

MAX_SOURCE_BYTES = 256 * 1024


def encode_code(source: str) -> str:
    """``CODE`` for ``source``, byte-identical to the SDK's encoding."""
    return base64.b64encode(zlib.compress(source.encode("utf-8"), level=9)).decode("ascii")


def decode_code(b64: str, *, max_bytes: int = MAX_SOURCE_BYTES) -> str:
    """The source text of a ``CODE`` value; CodePolicyError says which layer is broken."""
    if not isinstance(b64, str):
        raise CodePolicyError(f"CODE must be a string, got {type(b64).__name__}")
    text = "".join(b64.split())
    if not text:
        raise CodePolicyError("CODE is empty")
    if len(text) > 4 * max_bytes:
        raise CodePolicyError(f"CODE is too large ({len(text)} base64 characters)")
    try:
        packed = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CodePolicyError(f"CODE is not valid base64: {exc}") from exc
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, max_bytes + 1)
    except zlib.error as exc:
        raise CodePolicyError(f"CODE is not zlib-compressed data: {exc}") from exc
    if len(raw) > max_bytes or inflater.unconsumed_tail:
        raise CodePolicyError(f"CODE is larger than {max_bytes} bytes once decompressed")
    if not inflater.eof:
        raise CodePolicyError("CODE is not zlib-compressed data: the stream is truncated")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CodePolicyError(f"CODE is not UTF-8 text: {exc}") from exc
