"""JSON-RPC 2.0 on ``POST /`` of a real node, with plain ``urllib``."""

from __future__ import annotations

import mpreg

from .conftest import Node, http_post, wait_until


def test_positional_params(node: Node):
    status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "echo", "params": ["hi"], "id": 1})
    assert status == 200
    assert r == {"jsonrpc": "2.0", "result": "hi", "id": 1}
    status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "echos", "params": [1, "b"], "id": "x"})
    assert r == {"jsonrpc": "2.0", "result": [1, "b"], "id": "x"}


def test_named_params(node: Node):
    c = mpreg.Client(node.url)

    @c.register
    def scale(x, factor=1, offset=0):
        return x * factor + offset

    c.offer()
    try:
        status, r = node.jsonrpc(
            {"jsonrpc": "2.0", "method": "scale", "params": {"x": 2, "factor": 3}, "id": 7})
        assert status == 200
        assert r == {"jsonrpc": "2.0", "result": 6, "id": 7}
        status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "scale", "params": [2, 3, 1], "id": 8})
        assert r["result"] == 7
    finally:
        c.close()


def test_batch(node: Node):
    status, r = node.jsonrpc([
        {"jsonrpc": "2.0", "method": "echo", "params": ["a"], "id": 1},
        {"jsonrpc": "2.0", "method": "echo", "params": ["n"]},  # a notification: no answer
        {"jsonrpc": "2.0", "method": "no_such", "id": 2},
        {"jsonrpc": "2.0", "method": "echos", "params": ["b", "c"], "id": 3},
    ])
    assert status == 200
    assert isinstance(r, list) and len(r) == 3
    by_id = {x["id"]: x for x in r}
    assert by_id[1]["result"] == "a"
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["result"] == ["b", "c"]


def test_notification_is_204_and_still_runs(node: Node):
    c = mpreg.Client(node.url)
    seen = []

    @c.register
    def note(x):
        seen.append(x)

    c.offer()
    try:
        status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "note", "params": ["ping"]})
        assert (status, r) == (204, None)
        wait_until(lambda: seen == ["ping"], "the notification's call to run", 10)
        status, r = node.jsonrpc([{"jsonrpc": "2.0", "method": "echo", "params": [1]},
                                  {"jsonrpc": "2.0", "method": "echo", "params": [2]}])
        assert (status, r) == (204, None)
    finally:
        c.close()


def test_parse_error(node: Node):
    status, r = node.jsonrpc('{"jsonrpc": "2.0", "method": "echo", "params": [', raw=True)
    assert status == 200
    assert r["error"]["code"] == -32700 and r["id"] is None and r["jsonrpc"] == "2.0"


def test_invalid_request(node: Node):
    for bad in ({"jsonrpc": "1.0", "method": "echo", "id": 1},
                {"jsonrpc": "2.0", "method": 5, "id": 1},
                {"jsonrpc": "2.0", "id": 1}):
        status, r = node.jsonrpc(bad)
        assert status == 200
        assert r["error"]["code"] == -32600, (bad, r)
    status, r = node.jsonrpc([])
    assert r["error"]["code"] == -32600 and r["id"] is None
    status, r = node.jsonrpc([1])
    assert isinstance(r, list) and r[0]["error"]["code"] == -32600


def test_method_not_found(node: Node):
    status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "no_such_method", "id": 3})
    assert status == 200
    err = r["error"]
    assert err["code"] == -32601 and r["id"] == 3
    assert err["data"]["code"] == 1001 and isinstance(err["data"]["message"], str)


def test_invalid_params(node: Node):
    status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "echo", "params": "x", "id": 4})
    assert status == 200
    assert r["error"]["code"] == -32602 and r["id"] == 4
    # Arguments a typed (Rust) function cannot take: the built-in `_info` takes none.
    for params in ([1, 2, 3], {"zz": 1}):
        status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "_info", "params": params, "id": 5})
        assert r["error"]["code"] == -32602, r
        assert r["error"]["data"]["code"] == 1003
    # A function served from Python gets the arguments as sent and binds them itself:
    # a wrong name fails in Python, as an execution failure naming the TypeError.
    c = mpreg.Client(node.url)

    @c.register
    def pair(a, b):
        return [a, b]

    c.offer()
    try:
        status, r = node.jsonrpc(
            {"jsonrpc": "2.0", "method": "pair", "params": {"a": 1, "zz": 2}, "id": 6})
        assert r["error"]["code"] == -32000, r
        assert "TypeError" in r["error"]["message"] and "zz" in r["error"]["message"]
    finally:
        c.close()


def test_extension_member_routes_by_locs(node: Node):
    status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 1,
                              "mpreg": {"locs": [], "scope": "host", "timeout": 5.0}})
    assert r["result"] == "x", r
    status, r = node.jsonrpc({"jsonrpc": "2.0", "method": "echo", "params": ["x"], "id": 2,
                              "mpreg": {"locs": ["gpu-nobody-has"], "timeout": 5.0}})
    assert "error" in r and r["error"]["data"]["code"] in (1001, 1003), r


def test_wrong_content_or_size(node: Node):
    status, body = http_post(node.base + "/", b"x" * (1024 * 1024 + 10))
    assert status == 413
