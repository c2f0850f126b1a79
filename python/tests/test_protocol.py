"""MPREG's client protocol on the gateway, sent exactly as MPREG's Python client sends it:
raw ``websockets`` text frames of compact JSON, a ULID in ``u``, all five command fields,
no subprotocol, no Origin, no User-Agent, permessage-deflate offered."""

from __future__ import annotations

import inspect
import json
import socket
import threading
import time
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

import mpreg
from mpreg.ulid import new_ulid

from .conftest import Cluster, Node, http_get, wait_until

_PARAMS = set(inspect.signature(ws_connect).parameters)


class Raw:
    """A WebSocket speaking MPREG's protocol by hand."""

    def __init__(self, url: str) -> None:
        kw: dict[str, Any] = {"max_size": 1 << 20, "user_agent_header": None}
        if "proxy" in _PARAMS:
            kw["proxy"] = None
        # Entered as a context manager: websockets >= 17 deprecates a bare sync connect().
        self.ws = ws_connect(url, **kw).__enter__()
        _opened.append(self)

    def send(self, obj: Any) -> None:
        """One text frame of compact JSON."""
        self.ws.send(json.dumps(obj, separators=(",", ":")))

    def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        """One reply (text or binary JSON)."""
        raw = self.ws.recv(timeout=timeout)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        return json.loads(raw)

    def request(self, cmds: list[dict[str, Any]], u: str | None = None) -> str:
        """Sends an ``rpc`` request the way MPREG's client does; returns its ``u``."""
        u = u or new_ulid()
        self.send({"role": "rpc", "cmds": cmds, "u": u})
        return u

    def rpc(self, cmds: list[dict[str, Any]]) -> dict[str, Any]:
        """Request then its reply (checked to carry the same ``u`` and no ``role``)."""
        u = self.request(cmds)
        reply = self.recv()
        assert reply.get("u") == u, reply
        assert "role" not in reply, reply
        return reply

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - already gone
            pass


_opened: list[Raw] = []


@pytest.fixture(autouse=True)
def close_raw_connections():
    """Closes every raw connection a test opened, even when it failed half-way (an unread
    reply would otherwise keep websockets' non-daemon reader thread alive at exit)."""
    yield
    while _opened:
        _opened.pop().close()


def cmd(name: str, fun: str, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None,
        locs: list[str] | None = None) -> dict[str, Any]:
    """A command with all five fields, in MPREG's order."""
    return {"name": name, "fun": fun, "args": args or [], "kwargs": kwargs or {}, "locs": locs or []}


@pytest.fixture
def raw(node: Node):
    r = Raw(node.url)
    yield r
    r.close()


def serve_on(node: Node, *functions: Any, **options: Any) -> mpreg.Client:
    """A helper client of ``node`` serving ``functions`` (callables or (name, callable))."""
    c = mpreg.Client(node.url, **options)
    for f in functions:
        if isinstance(f, tuple):
            c.register(f[1], name=f[0])
        else:
            c.register(f)
    c.offer([fn for fn in c.aio.registry])
    return c


def test_echo(raw: Raw):
    u = new_ulid()
    raw.ws.send('{"role":"rpc","cmds":[{"name":"echo","fun":"echo","args":["Hello"],"kwargs":{},"locs":[]}],"u":"' + u + '"}')
    reply = raw.recv()
    assert reply == {"r": {"echo": "Hello"}, "error": None, "u": u}


def test_echos_returns_an_array(raw: Raw):
    reply = raw.rpc([cmd("echos", "echos", ["a", "b"])])
    assert reply["error"] is None
    assert reply["r"] == {"echos": ["a", "b"]}


def test_integers_stay_integers(raw: Raw):
    reply = raw.rpc([cmd("echo", "echo", [100])])
    assert reply["r"] == {"echo": 100} and isinstance(reply["r"]["echo"], int)


def test_unknown_command_is_1001(raw: Raw):
    reply = raw.rpc([cmd("nope", "no_such_function", ["x"])])
    assert reply["r"] is None
    err = reply["error"]
    assert err["code"] == 1001 and isinstance(err["message"], str)
    assert err["details"] == "Command not found: no_such_function"


def test_four_step_chain_across_two_nodes(cluster: Cluster):
    n1 = cluster.start("n1")
    n2 = cluster.start("n2", seeds=[n1])
    ran: list[tuple[str, Any]] = []

    def add1(x):
        ran.append(("n1", x))
        return x + 1

    def double(x):
        ran.append(("n2", x))
        return x * 2

    h1 = serve_on(n1, add1)
    h2 = serve_on(n2, double)
    try:
        raw = Raw(n1.url)
        # n1 must know n2's function before the chain can cross.
        wait_until(lambda: raw.rpc([cmd("double", "double", [1])])["r"] == {"double": 2},
                   "n1 to see `double` served on n2")
        ran.clear()
        reply = raw.rpc([
            cmd("first", "add1", [1]),
            cmd("second", "double", ["first"]),
            cmd("third", "add1", ["second"]),
            cmd("fourth", "double", ["third"]),
        ])
        assert reply["error"] is None, reply
        assert reply["r"] == {"fourth": 10}
        assert isinstance(reply["r"]["fourth"], int)
        assert ran == [("n1", 1), ("n2", 2), ("n1", 4), ("n2", 5)]
        raw.close()
    finally:
        h1.close()
        h2.close()


def test_dotted_field_access(node: Node):
    def stats(values):
        return {"a": {"b": sum(values)}, "count": len(values)}

    h = serve_on(node, stats)
    try:
        raw = Raw(node.url)
        reply = raw.rpc([
            cmd("s", "stats", [[1, 2, 3]]),
            cmd("total", "echo", ["s.a.b"]),
            cmd("both", "echos", ["s.count", {"nested": ["s.a"]}]),
        ])
        assert reply["error"] is None, reply
        assert reply["r"] == {"total": 6, "both": [3, {"nested": [{"b": 6}]}]}
        raw.close()
    finally:
        h.close()


def test_kwargs(node: Node):
    def scale(x, factor=1, offset=0):
        return x * factor + offset

    def show(*args, **kwargs):
        return {"args": args, "kwargs": kwargs}

    h = serve_on(node, scale, show)
    try:
        raw = Raw(node.url)
        reply = raw.rpc([cmd("scale", "scale", [2], {"factor": 3})])
        assert reply["r"] == {"scale": 6}, reply
        # Only kwargs, and a kwarg naming another command's result (mpreg extension).
        reply = raw.rpc([cmd("f", "echo", [10]), cmd("y", "scale", [], {"x": 1, "factor": "f", "offset": 5})])
        assert reply["r"] == {"y": 15}, reply
        # The served function gets args and kwargs exactly as sent (None stays None).
        reply = raw.rpc([cmd("show", "show", [1, None], {"k": None, "j": [2]})])
        assert reply["r"] == {"show": {"args": [1, None], "kwargs": {"k": None, "j": [2]}}}, reply
        raw.close()
    finally:
        h.close()


def test_locs_route_to_the_node_with_the_resources(cluster: Cluster):
    n1 = cluster.start("n1", resources="model-a,dataset-1")
    n2 = cluster.start("n2", resources="model-b,dataset-2", seeds=[n1])
    h1 = serve_on(n1, ("whoami", lambda: "n1"))
    h2 = serve_on(n2, ("whoami", lambda: "n2"))
    try:
        raw = Raw(n1.url)
        wait_until(lambda: raw.rpc([cmd("whoami", "whoami", locs=["dataset-2"])])["r"] == {"whoami": "n2"},
                   "n1 to see n2's `whoami`")
        for _ in range(10):
            assert raw.rpc([cmd("whoami", "whoami", locs=["dataset-2"])])["r"] == {"whoami": "n2"}
            assert raw.rpc([cmd("whoami", "whoami", locs=["model-a", "dataset-1"])])["r"] == {"whoami": "n1"}
        # The node's own built-in `echo` follows locs too.
        reply = raw.rpc([cmd("echo", "echo", ["x"], locs=["model-b"])])
        assert reply["r"] == {"echo": "x"}
        reply = raw.rpc([cmd("whoami", "whoami", locs=["dataset-1", "dataset-2"])])
        assert reply["r"] is None and reply["error"]["code"] in (1001, 1003), reply
        raw.close()
    finally:
        h1.close()
        h2.close()


def test_twenty_concurrent_requests_answered_out_of_order(node: Node):
    def sleepy(i):
        time.sleep((20 - i) * 0.05)
        return i

    h = serve_on(node, sleepy)
    try:
        raw = Raw(node.url)
        sent = {}
        for i in range(20):
            sent[raw.request([cmd("sleepy", "sleepy", [i])])] = i
        arrived = []
        for _ in range(20):
            reply = raw.recv()
            assert reply["error"] is None, reply
            assert reply["r"] == {"sleepy": sent[reply["u"]]}
            arrived.append(reply["r"]["sleepy"])
        assert sorted(arrived) == list(range(20))
        assert arrived != list(range(20)), "replies came in request order"
        assert arrived[0] > arrived[-1]  # the shortest sleep (last sent) is not last
        raw.close()
    finally:
        h.close()


def test_a_client_leaving_mid_call_leaves_the_node_healthy(node: Node):
    started = threading.Event()

    def slow():
        started.set()
        time.sleep(1.0)
        return "late"

    h = serve_on(node, slow)
    try:
        raw = Raw(node.url)
        raw.request([cmd("slow", "slow")])
        assert started.wait(10)
        # Gone without a close handshake: shutdown wakes websockets' reader thread too.
        raw.ws.socket.shutdown(socket.SHUT_RDWR)
        raw.ws.socket.close()
        time.sleep(1.5)  # let the abandoned call finish and its result be discarded
        assert node.alive()
        assert http_get(node.base + "/health/live")[0] == 200
        again = Raw(node.url)
        assert again.rpc([cmd("echo", "echo", ["still here"])])["r"] == {"echo": "still here"}
        assert again.rpc([cmd("slow", "slow")])["r"] == {"slow": "late"}
        again.close()
    finally:
        h.close()


def test_unknown_fields_are_ignored_and_bad_frames_are_1000(raw: Raw):
    u = new_ulid()
    raw.send({"role": "rpc", "cmds": [{**cmd("echo", "echo", ["x"]), "function_id": "f", "routing_topic": None}],
              "u": u, "debug_mode": False, "include_execution_summary": False})
    assert raw.recv() == {"r": {"echo": "x"}, "error": None, "u": u}
    raw.ws.send("not json")
    reply = raw.recv()
    assert reply["error"]["code"] == 1000 and reply["u"] is None
    u = new_ulid()
    raw.send({"role": "dance", "u": u})
    reply = raw.recv()
    assert reply["error"]["code"] == 1000 and reply["u"] == u
