"""Request ids: 26-character ULIDs, as MPREG's own client sends in ``u``.

A ULID is 48 bits of milliseconds since the Unix epoch then 80 random bits, written in
Crockford's base32 (``0-9A-Z`` without ``I L O U``). The server treats it as an opaque
string; its only job is to be unique per connection.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_ulid", "ALPHABET"]

#: Crockford's base32 alphabet.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(now_ms: int | None = None) -> str:
    """A new ULID string (26 characters) for time ``now_ms`` (default: now)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = ((ms & ((1 << 48) - 1)) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
