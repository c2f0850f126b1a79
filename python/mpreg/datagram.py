"""The envelope of mpreg's UDP datagrams (the Rust ``src/proto/datagram.rs``).

Layout::

    0..4    magic "MPRG"
    4       format version (2)
    5       kind (0 gossip, 1 beacon)
    6..14   cluster tag: the first 8 bytes of SHA-256(cluster id)
    14..22  sender's clock, ms since the Unix epoch
    22..30  sender id (a client's is random)
    30..38  sender's counter (one more for every datagram it sends)
    38..46  destination id (0 = whoever receives it)
    46..    payload (MessagePack)
    last 16 HMAC-SHA256(secret, b"mpreg-datagram-v2" + everything before), truncated —
            only with a shared secret

All integers are big-endian.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_LEN",
    "TAG_LEN",
    "KIND_GOSSIP",
    "KIND_BEACON",
    "ANYONE",
    "REPLAY_WINDOW_MS",
    "Stamp",
    "Opened",
    "Rejected",
    "cluster_tag",
    "seal",
    "open_datagram",
]

MAGIC = b"MPRG"
VERSION = 2
HEADER_LEN = 46
TAG_LEN = 16
KIND_GOSSIP = 0
KIND_BEACON = 1
ANYONE = 0
#: An authenticated datagram whose clock differs from ours by more than this is refused.
REPLAY_WINDOW_MS = 5 * 60 * 1000
#: Domain separation of the HMAC, as in the Rust code.
HMAC_CONTEXT = b"mpreg-datagram-v2"

_HEADER = struct.Struct(">4sBB8sQQQQ")
assert _HEADER.size == HEADER_LEN


class Rejected(ValueError):
    """A received datagram that must be dropped; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Stamp:
    """Who sends a datagram: sender id, its counter, destination id."""

    sender: int
    counter: int
    to: int = ANYONE


@dataclass(frozen=True)
class Opened:
    """A datagram that passed :func:`open_datagram`."""

    kind: int
    stamp: Stamp
    sent_ms: int
    payload: bytes


def cluster_tag(cluster: str) -> bytes:
    """The 8-byte tag of a cluster id: SHA-256 of its UTF-8 bytes, cut to 8."""
    return hashlib.sha256(cluster.encode("utf-8")).digest()[:8]


def _mac(secret: bytes, data: bytes) -> bytes:
    """The truncated HMAC tag of ``data``."""
    return hmac.new(secret, HMAC_CONTEXT + data, hashlib.sha256).digest()[:TAG_LEN]


def seal(
    kind: int,
    cluster: bytes,
    secret: bytes | None,
    now_ms: int,
    stamp: Stamp,
    payload: bytes,
) -> bytes:
    """Wraps ``payload`` for sending (header, payload, then the tag when there is a secret)."""
    if len(cluster) != 8:
        raise ValueError("a cluster tag is 8 bytes (use cluster_tag())")
    head = _HEADER.pack(
        MAGIC, VERSION, kind, cluster, now_ms, stamp.sender, stamp.counter, stamp.to
    )
    out = head + payload
    if secret is not None:
        out += _mac(secret, out)
    return out


def open_datagram(
    data: bytes, cluster: bytes, secret: bytes | None, now_ms: int
) -> Opened:
    """Checks format, cluster and (with a secret) the tag and the clock window.

    Raises :class:`Rejected` with reason ``malformed``, ``other cluster`` or
    ``unauthenticated``. Replays are not tracked: a probing client lives for a second.
    """
    if len(data) < HEADER_LEN or data[:4] != MAGIC or data[4] != VERSION:
        raise Rejected("malformed")
    kind = data[5]
    if kind not in (KIND_GOSSIP, KIND_BEACON):
        raise Rejected("malformed")
    if data[6:14] != cluster:
        raise Rejected("other cluster")
    signed = data
    if secret is not None:
        if len(data) < HEADER_LEN + TAG_LEN:
            raise Rejected("unauthenticated")
        signed, tag = data[:-TAG_LEN], data[-TAG_LEN:]
        if not hmac.compare_digest(_mac(secret, signed), tag):
            raise Rejected("unauthenticated")
    _, _, _, _, sent_ms, sender, counter, to = _HEADER.unpack_from(data)
    if secret is not None and abs(sent_ms - now_ms) > REPLAY_WINDOW_MS:
        raise Rejected("unauthenticated")
    return Opened(kind, Stamp(sender, counter, to), sent_ms, bytes(signed[HEADER_LEN:]))
