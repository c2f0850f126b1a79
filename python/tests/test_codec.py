"""The hand-written MessagePack codec: exact bytes for known values, round trips, errors."""

import pytest

from mpreg import codec


@pytest.mark.parametrize(
    "value, hexbytes",
    [
        (None, "c0"),
        (True, "c3"),
        (False, "c2"),
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65536, "ce00010000"),
        (2**32, "cf0000000100000000"),
        (2**64 - 1, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-129, "d1ff7f"),
        (-(2**31), "d280000000"),
        (-(2**63), "d38000000000000000"),
        ("", "a0"),
        ("probe", "a570726f6265"),
        ("x" * 31, "bf" + "78" * 31),
        ("x" * 32, "d920" + "78" * 32),
        ("x" * 256, "da0100" + "78" * 256),
        (b"", "c400"),
        (b"\x01\x02", "c4020102"),
        (b"a" * 256, "c50100" + "61" * 256),
        ([], "90"),
        ([1, [2]], "920191" + "02"),
        (list(range(16)), "dc0010" + "".join(f"{i:02x}" for i in range(16))),
        ({}, "80"),
        ({"kind": "probe", "member": None}, "82a46b696e64a570726f6265a66d656d626572c0"),
        ({str(i): i for i in range(16)}, None),
        (1.5, "cb3ff8000000000000"),
    ],
)
def test_known_encodings_and_round_trip(value, hexbytes):
    data = codec.pack(value)
    if hexbytes is not None:
        assert data.hex() == hexbytes
    assert codec.unpack(data) == value


def test_nested_round_trip():
    v = {
        "kind": "answer",
        "member": {
            "addr": {"V4": [[127, 0, 0, 1], 7700]},
            "id": 0xFEDCBA9876543210,
            "name": "n1",
            "role": "node",
            "host": "h" * 40,
            "started_ms": 1_700_000_000_000,
            "bump": 0,
        },
        "http": "127.0.0.1:7780",
        "blob": b"\x00" * 70000,
        "list": list(range(70000)),
    }
    assert codec.unpack(codec.pack(v)) == v


def test_tuples_encode_as_arrays():
    assert codec.pack((1, 2)) == codec.pack([1, 2])


def test_float32_is_decoded():
    assert codec.unpack(bytes.fromhex("ca3fc00000")) == 1.5


@pytest.mark.parametrize(
    "hexbytes",
    ["", "a5616263", "92 01", "c1", "0101", "d9", "81a1"],
)
def test_bad_input_raises_decode_error(hexbytes):
    with pytest.raises(codec.DecodeError):
        codec.unpack(bytes.fromhex(hexbytes.replace(" ", "")))


def test_unsupported_types_and_ranges():
    with pytest.raises(TypeError):
        codec.pack(object())
    with pytest.raises(OverflowError):
        codec.pack(2**64)
    with pytest.raises(OverflowError):
        codec.pack(-(2**63) - 1)


def test_too_deep_nesting_is_refused():
    with pytest.raises(codec.DecodeError):
        codec.unpack(b"\x91" * 100 + b"\xc0")
