"""The Python API against real nodes: zero-config, calls, workflows, pub/sub, serving."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import mpreg

from .conftest import Cluster, Node, wait_until

PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


def test_zero_config_call_finds_the_node_by_its_beacon(mpreg_bin: str, tmp_path: Path):
    # A node of the default cluster; isolation comes from the per-test beacon port.
    c = Cluster(mpreg_bin, tmp_path)
    c.cluster = "default"
    try:
        c.start("zc1")
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": PACKAGE_DIR,
            "MPREG_INTERFACES": "lo",
            "MPREG_BEACON_PORT": str(c.beacon_port),
            "MPREG_MDNS": "0",  # tests never use mDNS
        }
        code = "import mpreg, json; print(json.dumps(mpreg.call('echo', 'hi')))"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == "hi"
    finally:
        c.stop()


def test_zero_config_with_nobody_says_what_it_tried(confined_env: Cluster, monkeypatch):
    monkeypatch.setenv("MPREG_DISCOVERY_WAIT_MS", "300")
    with pytest.raises(mpreg.NoGateway) as e:
        mpreg.Client()
    msg = str(e.value)
    assert "127.255.255.255 (lo)" in msg and str(confined_env.beacon_port) in msg
    assert "no answer" in msg and "mDNS off" in msg


def test_call_workflow_and_errors(node: Node):
    with mpreg.Client(node.url) as c:
        assert c.call("echo", "hi") == "hi"
        assert c.call("echos", 1, [2], {"k": None}) == [1, [2], {"k": None}]
        out = c.workflow([
            {"name": "a", "fun": "echo", "args": [{"x": [10, 20]}]},
            {"name": "b", "fun": "echos", "args": ["a.x.1", "literal"]},
        ])
        assert out == {"b": [20, "literal"]}
        every = c.workflow([{"name": "a", "fun": "echo", "args": [1]},
                            {"name": "b", "fun": "echo", "args": ["a"]}], all=True)
        assert every == {"a": 1, "b": 1}
        with pytest.raises(mpreg.CommandNotFound) as e:
            c.call("does_not_exist")
        assert e.value.code == 1001 and e.value.details == "Command not found: does_not_exist"
        with pytest.raises(mpreg.ExecutionFailed):
            c.workflow([{"name": "a", "fun": "echo", "args": ["b"]},
                        {"name": "b", "fun": "echo", "args": ["a"]}])  # a cycle


def test_many_calls_in_flight_on_one_connection(node: Node):
    async def main():
        async with mpreg.AsyncClient(node.url) as c:
            results = await asyncio.gather(*(c.call("echo", i) for i in range(300)))
            assert results == list(range(300))

    asyncio.run(main())


def test_publish_subscribe_round_trip(node: Node):
    with mpreg.Client(node.url) as sub_client, mpreg.Client(node.url) as pub_client:
        sub = sub_client.subscribe("sensors.*.temp")
        assert pub_client.publish("sensors.a.temp", {"c": 21.5}) == 1
        assert pub_client.publish("sensors.a.humidity", 40) == 0
        assert pub_client.publish("sensors.b.temp", [1, 2]) == 1
        m = sub.get(timeout=10)
        assert (m.topic, m.message, m.dropped) == ("sensors.a.temp", {"c": 21.5}, 0)
        m = next(iter(sub))
        assert (m.topic, m.message) == ("sensors.b.temp", [1, 2])
        sub.close()
        assert pub_client.publish("sensors.c.temp", 1) == 0
        assert list(sub) == []


def test_async_subscribe_and_confirmed_publish(node: Node):
    async def main():
        sub_c = await mpreg.connect(node.url)
        pub_c = await mpreg.connect(node.url)
        try:
            sub = await sub_c.subscribe("jobs.**")
            assert await pub_c.publish("jobs.x.y", "hello", confirm=True) == 1
            async for m in sub:
                assert (m.topic, m.message, m.dropped) == ("jobs.x.y", "hello", 0)
                break
            await sub.close()
        finally:
            await sub_c.close()
            await pub_c.close()

    asyncio.run(main())


def test_queue_group_shares_messages(node: Node):
    with mpreg.Client(node.url) as a, mpreg.Client(node.url) as b, mpreg.Client(node.url) as p:
        sa = a.subscribe("work.*", group="workers")
        sb = b.subscribe("work.*", group="workers")
        for i in range(10):
            assert p.publish(f"work.{i}", i) == 1
        got = []
        for s in (sa, sb):
            while True:
                try:
                    # Quiet for 2 s: all ten have arrived, even on a loaded machine.
                    got.append(s.get(timeout=2.0).message)
                except mpreg.Timeout:
                    break
        assert sorted(got) == list(range(10))


def serve_in_thread(client: mpreg.Client) -> threading.Thread:
    """Runs ``client.serve()`` (blocking) in a thread."""
    t = threading.Thread(target=_swallow, args=(client.serve,), daemon=True)
    t.start()
    return t


def test_register_and_serve_called_by_the_rust_cli_and_python(cluster: Cluster):
    n1 = cluster.start("n1")
    server = mpreg.Client(n1.url)

    @server.register
    def greet(name, punctuation="!"):
        return f"hello {name}{punctuation}"

    @server.register(name="adder", resources=["py"])
    async def add(a, b):
        await asyncio.sleep(0.01)
        return a + b

    @server.register
    def fails(x):
        raise ValueError(f"bad x: {x}")

    t = serve_in_thread(server)
    try:
        caller = mpreg.Client(n1.url)
        wait_until(lambda: caller.call("greet", "py") == "hello py!", "greet to be served")
        assert caller.call("greet", "py", punctuation="?") == "hello py?"
        assert caller.call("adder", 2, 3, locs=["py"]) == 5
        with pytest.raises(mpreg.ExecutionFailed) as e:
            caller.call("fails", 7)
        assert "ValueError: bad x: 7" in e.value.message
        # The Rust CLI, a client of the cluster found over loopback discovery.
        out = cluster.cli("call", "greet", "rust", "--timeout", "20")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == "hello rust!"
        out = cluster.cli("call", "adder", "40", "2", "--locs", "py", "--timeout", "20")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == 42
        # Closing the serving client withdraws its functions.
        server.close()
        t.join(10)
        assert not t.is_alive()
        wait_until(lambda: _not_found(caller, "greet"), "greet to be withdrawn", 10)
        with pytest.raises(mpreg.CommandNotFound) as e:
            caller.call("adder", 1, 2)
        assert e.value.code == 1001
        caller.close()
    finally:
        server.close()


def _not_found(c: mpreg.Client, fun: str) -> bool:
    try:
        c.call(fun, "x")
    except mpreg.CommandNotFound:
        return True
    return False


def test_module_level_register_and_serve(node: Node, monkeypatch):
    monkeypatch.setenv("MPREG_GATEWAY", node.url)
    monkeypatch.setattr(mpreg, "_default", None)
    registry = mpreg.Registry()
    monkeypatch.setattr(mpreg, "REGISTRY", registry)
    import mpreg.client as client_module

    monkeypatch.setattr(client_module, "REGISTRY", registry)

    @registry.register(name="triple", visibility="host")
    def triple(x):
        return 3 * x

    t = threading.Thread(target=lambda: _swallow(mpreg.serve), daemon=True)
    t.start()
    try:
        with mpreg.Client(node.url) as caller:
            assert wait_until(lambda: caller.call("triple", 5) == 15, "triple to be served")
    finally:
        mpreg.close()
        t.join(10)


def _swallow(f) -> None:
    try:
        f()
    except mpreg.MpregError:
        pass


def test_async_serve_and_call(node: Node):
    async def main():
        server = mpreg.AsyncClient(node.url)

        @server.register
        async def slow_square(x):
            await asyncio.sleep(0.05)
            return x * x

        serving = asyncio.create_task(server.serve())
        caller = await mpreg.connect(node.url)
        try:
            for _ in range(200):
                try:
                    if await caller.call("slow_square", 3) == 9:
                        break
                except mpreg.CommandNotFound:
                    await asyncio.sleep(0.05)
            results = await asyncio.gather(*(caller.call("slow_square", i) for i in range(20)))
            assert results == [i * i for i in range(20)]
        finally:
            await server.close()
            await asyncio.wait_for(serving, 10)
            await caller.close()

    asyncio.run(main())


def test_timeout_and_busy(node: Node):
    server = mpreg.Client(node.url, max_in_flight=1)
    gate = threading.Event()
    entered = threading.Event()

    @server.register
    def block(x):
        entered.set()
        gate.wait(10)
        return x

    server.offer()
    try:
        with mpreg.Client(node.url) as c:
            with pytest.raises(mpreg.Timeout) as e:
                c.call("block", 1, timeout=0.5)
            assert e.value.code == 1004
            assert isinstance(e.value, TimeoutError)
    finally:
        gate.set()
        server.close()


def test_busy_when_a_served_function_is_saturated(node: Node):
    server = mpreg.Client(node.url, max_in_flight=1)
    gate = threading.Event()
    entered = threading.Event()

    @server.register
    def block(x):
        entered.set()
        gate.wait(10)
        return x

    server.offer()
    try:
        async def busy():
            async with mpreg.AsyncClient(node.url) as c:
                first = asyncio.create_task(c.call("block", 2, timeout=10))
                try:
                    assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
                    with pytest.raises(mpreg.Busy) as e:
                        await c.call("block", 3, timeout=10)
                    assert e.value.code == 1006
                finally:
                    gate.set()
                    results = await asyncio.gather(first, return_exceptions=True)
                assert results == [2]

        asyncio.run(busy())
    finally:
        gate.set()
        server.close()


def test_default_client_reconnects_after_close(node: Node, monkeypatch):
    monkeypatch.setenv("MPREG_GATEWAY", node.url)
    monkeypatch.setattr(mpreg, "_default", None)
    try:
        assert mpreg.call("echo", 1) == 1
        mpreg.close()
        assert mpreg.call("echo", 2) == 2
    finally:
        mpreg.close()


def test_zero_config_with_a_shared_secret(cluster: Cluster, tmp_path: Path, monkeypatch):
    secret = tmp_path / "secret"
    secret.write_text("s3cret-for-this-test\n")
    n1 = cluster.start("sec1", extra_env={"MPREG_SECRET_FILE": str(secret)})
    for k, v in cluster.env().items():
        if k.startswith("MPREG_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("MPREG_DISCOVERY_WAIT_MS", "600")
    # Without the secret the node does not answer the probe (unauthenticated datagrams).
    with pytest.raises(mpreg.NoGateway, match="no answer"):
        mpreg.Client()
    # With it, the signed probe is answered and the signed answer accepted.
    monkeypatch.setenv("MPREG_SECRET_FILE", str(secret))
    with mpreg.Client() as c:
        assert c.url == n1.url
        assert c.call("echo", "signed") == "signed"


def test_frame_limits(node: Node):
    with mpreg.Client(node.url) as c:
        # A request over 1 MiB is refused here, before it could close the connection.
        with pytest.raises(mpreg.MpregError, match="1 MiB") as e:
            c.call("echo", "x" * (1 << 20))
        assert e.value.code is None
        # A reply that would exceed 1 MiB is the gateway's error 1002.
        half = "y" * (600 * 1024)
        with pytest.raises(mpreg.InternalError) as e:
            c.workflow([{"name": "a", "fun": "echo", "args": [half]},
                        {"name": "b", "fun": "echos", "args": ["a", "a"]}])
        assert e.value.code == 1002
        assert c.call("echo", "still connected") == "still connected"
