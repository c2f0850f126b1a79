"""Fixtures starting real ``mpreg serve`` nodes from the binary named by ``MPREG_BIN``.

Every node is confined to this machine: discovery on ``lo`` only (probes go to
127.255.255.255), mDNS off, a free beacon port and a unique cluster per test, TCP and
HTTP bound to 127.0.0.1. Readiness is ``/health/ready`` polled with a deadline.
Without ``MPREG_BIN`` the integration tests are skipped, or fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import free_tcp_port, free_udp_port

#: urllib without any proxy from the environment: every request stays on 127.0.0.1.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))

READY_DEADLINE_S = 30.0


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Status and body of a GET (errors are statuses too)."""
    try:
        with _HTTP.open(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_post(url: str, body: bytes | str, timeout: float = 30.0,
              content_type: str = "application/json") -> tuple[int, bytes]:
    """Status and body of a POST."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": content_type})
    try:
        with _HTTP.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(check: Callable[[], Any], what: str, deadline_s: float = READY_DEADLINE_S,
               interval: float = 0.05) -> Any:
    """Polls ``check`` until it returns something truthy (exceptions count as no)."""
    end = time.monotonic() + deadline_s
    last: Any = None
    while time.monotonic() < end:
        try:
            v = check()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - reported if the deadline passes
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}; last: {last!r}")


class Node:
    """One ``mpreg serve`` process."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str, port: int, http: int,
                 log: Path) -> None:
        self.proc = proc
        self.name = name
        self.port = port
        self.http = http
        self.log = log

    @property
    def url(self) -> str:
        """The WebSocket gateway."""
        return f"ws://127.0.0.1:{self.http}/"

    @property
    def base(self) -> str:
        """The HTTP base URL."""
        return f"http://127.0.0.1:{self.http}"

    @property
    def addr(self) -> str:
        """The node's TCP address (a seed for others)."""
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        """The last lines of its output."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def jsonrpc(self, payload: Any, raw: bool = False) -> tuple[int, Any]:
        """POSTs a JSON-RPC body; returns the status and the decoded JSON (or None)."""
        body = payload if raw else json.dumps(payload)
        status, data = http_post(self.base + "/", body)
        return status, (json.loads(data) if data.strip() else None)


class Cluster:
    """Nodes of one test: a unique cluster id and beacon port, confined to loopback."""

    def __init__(self, binary: str, tmp: Path) -> None:
        self.binary = binary
        self.tmp = tmp
        self.cluster = f"pytest-{uuid.uuid4().hex[:12]}"
        self.beacon_port = free_udp_port()
        self.nodes: list[Node] = []

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a node or CLI of this cluster (and of Python clients)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPREG_")}
        env.update(
            MPREG_INTERFACES="lo",
            MPREG_MDNS="0",
            MPREG_BEACON_PORT=str(self.beacon_port),
            MPREG_CLUSTER=self.cluster,
            MPREG_HOST=f"host-{self.cluster}",
            RUST_LOG=os.environ.get("RUST_LOG", "mpreg=info"),
        )
        env.update(extra)
        return env

    def start(self, name: str | None = None, resources: str | None = None,
              seeds: list[Node] | None = None, wait: bool = True,
              extra_env: dict[str, str] | None = None) -> Node:
        """Starts a node and waits until ``/health/ready`` says 200."""
        name = name or f"n{len(self.nodes) + 1}"
        port = free_tcp_port()
        http = free_tcp_port()
        log = self.tmp / f"{name}.log"
        extra = {"MPREG_PORT": str(port), "MPREG_BIND": "127.0.0.1"}
        if seeds:
            extra["MPREG_SEEDS"] = ",".join(s.addr for s in seeds)
        extra.update(extra_env or {})
        args = [self.binary, "serve", "--name", name, "--http", f"127.0.0.1:{http}"]
        if resources:
            args += ["--resources", resources]
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, env=self.env(**extra), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        node = Node(proc, name, port, http, log)
        self.nodes.append(node)
        if wait:
            self.wait_ready(node)
        return node

    def wait_ready(self, node: Node) -> None:
        """Polls ``/health/ready`` until 200; fails early when the process died."""

        def ready() -> bool:
            if not node.alive():
                raise AssertionError(
                    f"node {node.name} exited with {node.proc.returncode}:\n{node.log_tail()}")
            return http_get(node.base + "/health/ready", timeout=1.0)[0] == 200

        try:
            wait_until(ready, f"{node.name} /health/ready")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- {node.name} log:\n{node.log_tail()}") from None

    def stop(self) -> None:
        """Terminates every node (kill after 5 s)."""
        for n in self.nodes:
            if n.alive():
                n.proc.terminate()
        for n in self.nodes:
            try:
                n.proc.wait(5)
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait(5)

    def cli(self, *args: str, timeout: float = 30.0, **env: str) -> subprocess.CompletedProcess[str]:
        """Runs the ``mpreg`` CLI with this cluster's environment."""
        return subprocess.run([self.binary, *args], env=self.env(**env), capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def mpreg_bin() -> str:
    """The ``mpreg`` binary under test (``MPREG_BIN``)."""
    path = os.environ.get("MPREG_BIN")
    if not path:
        if os.environ.get("CI"):
            pytest.fail("CI is set but MPREG_BIN is not: the integration tests need the "
                        "mpreg binary (cargo build --bin mpreg; MPREG_BIN=target/debug/mpreg)")
        pytest.skip("MPREG_BIN is not set: integration tests need a built mpreg binary "
                    "(cargo build --bin mpreg, then MPREG_BIN=$PWD/target/debug/mpreg)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"MPREG_BIN={path} is not an executable file")
    return path


@pytest.fixture
def cluster(mpreg_bin: str, tmp_path: Path) -> Iterator[Cluster]:
    """An empty cluster; nodes are started by the test and killed at teardown."""
    c = Cluster(mpreg_bin, tmp_path)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def node(cluster: Cluster) -> Node:
    """One ready node."""
    return cluster.start("n1")


@pytest.fixture
def confined_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """This process's environment confined like the nodes (for zero-config clients)."""
    for k in list(os.environ):
        if k.startswith("MPREG_"):
            monkeypatch.delenv(k)
    for k, v in cluster.env().items():
        if k.startswith("MPREG_"):
            monkeypatch.setenv(k, v)
    return cluster


@pytest.fixture(autouse=True)
def confine_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    """Safety net for every test: discovery of this process probes loopback only and never
    browses mDNS, whatever a test forgets to set."""
    monkeypatch.setenv("MPREG_INTERFACES", "lo")
    monkeypatch.setenv("MPREG_MDNS", "0")
