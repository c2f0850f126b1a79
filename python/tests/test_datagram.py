"""The datagram envelope against vectors computed from datagram.rs's layout."""

import hashlib
import hmac
import struct

import pytest

from mpreg import datagram, discovery

TAG_LAB = "a51146d38077ff99"  # sha256(b"lab")[:8], from `printf lab | sha256sum`
PROBE = "82a46b696e64a570726f6265a66d656d626572c0"  # {"kind":"probe","member":nil}
# magic "MPRG", version 2, kind 1 (beacon), tag, clock 1_000_000 ms, sender 42, counter 7, to 0
VECTOR = (
    "4d505247" "02" "01" + TAG_LAB + "00000000000f4240" "000000000000002a"
    "0000000000000007" "0000000000000000" + PROBE
)
# HMAC-SHA256(b"s", b"mpreg-datagram-v2" + VECTOR)[:16], from `openssl dgst -sha256 -hmac s`
VECTOR_TAG = "fd7554ce33d4d9598f9731eaa3b07c68"


def test_cluster_tag():
    assert datagram.cluster_tag("lab").hex() == TAG_LAB
    assert datagram.cluster_tag("default") == hashlib.sha256(b"default").digest()[:8]


def test_probe_payload():
    assert discovery.probe_payload().hex() == PROBE


def test_seal_matches_the_vector_without_secret():
    d = datagram.seal(
        datagram.KIND_BEACON,
        datagram.cluster_tag("lab"),
        None,
        1_000_000,
        datagram.Stamp(42, 7, 0),
        discovery.probe_payload(),
    )
    assert d.hex() == VECTOR
    assert len(d) == datagram.HEADER_LEN + len(PROBE) // 2


def test_seal_matches_the_vector_with_secret():
    d = datagram.seal(
        datagram.KIND_BEACON,
        datagram.cluster_tag("lab"),
        b"s",
        1_000_000,
        datagram.Stamp(42, 7, 0),
        discovery.probe_payload(),
    )
    assert d.hex() == VECTOR + VECTOR_TAG
    # The same, by the layout's own words.
    body = bytes.fromhex(VECTOR)
    mac = hmac.new(b"s", b"mpreg-datagram-v2" + body, hashlib.sha256).digest()[:16]
    assert d == body + mac


def test_open_round_trip_and_rejects():
    tag = datagram.cluster_tag("lab")
    d = datagram.seal(1, tag, b"s", 1_000_000, datagram.Stamp(5, 6, 7), b"hi")
    o = datagram.open_datagram(d, tag, b"s", 1_000_000 + 1000)
    assert (o.kind, o.payload, o.sent_ms, o.stamp) == (1, b"hi", 1_000_000, datagram.Stamp(5, 6, 7))
    with pytest.raises(datagram.Rejected, match="other cluster"):
        datagram.open_datagram(d, datagram.cluster_tag("x"), b"s", 1_000_000)
    with pytest.raises(datagram.Rejected, match="unauthenticated"):
        datagram.open_datagram(d, tag, b"t", 1_000_000)
    with pytest.raises(datagram.Rejected, match="unauthenticated"):
        datagram.open_datagram(d, tag, b"s", 1_000_000 + datagram.REPLAY_WINDOW_MS + 1)
    for at in (14, 22, 30, 38, 46):
        bad = bytearray(d)
        bad[at] ^= 1
        with pytest.raises(datagram.Rejected):
            datagram.open_datagram(bytes(bad), tag, b"s", 1_000_000)
    with pytest.raises(datagram.Rejected, match="malformed"):
        datagram.open_datagram(b"GET / HTTP/1.1\r\n" * 4, tag, None, 0)
    v1 = bytearray(datagram.seal(1, tag, None, 0, datagram.Stamp(1, 1), b"x"))
    v1[4] = 1
    with pytest.raises(datagram.Rejected, match="malformed"):
        datagram.open_datagram(bytes(v1), tag, None, 0)
    # Without a secret the clock is not checked.
    plain = datagram.seal(1, tag, None, 0, datagram.Stamp(1, 1), b"x")
    assert datagram.open_datagram(plain, tag, None, 10**13).payload == b"x"


def test_header_fields_are_big_endian_at_their_offsets():
    d = datagram.seal(0, b"\x01" * 8, None, 2**40 + 3, datagram.Stamp(2**63, 9, 2**64 - 1), b"")
    assert d[:4] == b"MPRG" and d[4] == 2 and d[5] == 0 and d[6:14] == b"\x01" * 8
    assert struct.unpack(">QQQQ", d[14:46]) == (2**40 + 3, 2**63, 9, 2**64 - 1)
