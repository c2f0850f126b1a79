"""Request ids are 26-character ULIDs."""

import re
import time

from mpreg.ulid import ALPHABET, new_ulid

ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def test_shape_and_uniqueness():
    ids = [new_ulid() for _ in range(10000)]
    assert all(ULID.match(u) for u in ids)
    assert len(set(ids)) == len(ids)


def test_time_prefix():
    ms = 1_469_918_176_385  # the ULID spec's example time
    assert new_ulid(ms)[:10] == "01ARYZ6S41"
    now = int(time.time() * 1000)
    decoded = 0
    for ch in new_ulid(now)[:10]:
        decoded = decoded * 32 + ALPHABET.index(ch)
    assert decoded == now


def test_ids_sort_by_time():
    assert new_ulid(1000) < new_ulid(2000)
