"""Error replies become exceptions carrying mpreg's code, message and details."""

import pickle

import pytest

import mpreg
from mpreg.errors import error_from_wire


@pytest.mark.parametrize(
    "code, cls",
    [
        (1000, mpreg.ProtocolError),
        (1001, mpreg.CommandNotFound),
        (1002, mpreg.InternalError),
        (1003, mpreg.ExecutionFailed),
        (1004, mpreg.Timeout),
        (1005, mpreg.ClusterMismatch),
        (1006, mpreg.Busy),
        (1099, mpreg.MpregError),
    ],
)
def test_codes_map_to_classes(code, cls):
    e = error_from_wire({"code": code, "message": "m", "details": {"x": 1}})
    assert type(e) is cls
    assert isinstance(e, mpreg.MpregError)
    assert (e.code, e.message, e.details) == (code, "m", {"x": 1})
    assert str(e) == f"[{code}] m"


def test_command_not_found_keeps_the_details():
    e = error_from_wire(
        {"code": 1001, "message": "unknown function `nope`", "details": "Command not found: nope"}
    )
    assert isinstance(e, mpreg.CommandNotFound)
    assert e.details == "Command not found: nope"
    assert "nope" in str(e)


def test_builtin_bases():
    assert isinstance(error_from_wire({"code": 1004, "message": "late"}), TimeoutError)
    assert isinstance(mpreg.ConnectionLost(None, "gone"), ConnectionError)
    assert str(mpreg.NoGateway(None, "nothing")) == "nothing"


@pytest.mark.parametrize(
    "bad",
    [None, "boom", [], {"code": "1001", "message": "m"}, {"code": 1001}, {"code": True, "message": "m"}],
)
def test_malformed_errors_are_protocol_errors(bad):
    e = error_from_wire(bad)
    assert type(e) is mpreg.ProtocolError and e.code is None


def test_pickles():
    e = mpreg.ExecutionFailed(1003, "failed", "d")
    e2 = pickle.loads(pickle.dumps(e))
    assert (type(e2), e2.code, e2.message, e2.details) == (mpreg.ExecutionFailed, 1003, "failed", "d")
