"""Discovery without a real node: answer decoding, the choice, interface selection, and
the probe against an in-process fake node on loopback (nothing leaves 127.0.0.0/8)."""

import socket
import threading
import time

import pytest

from mpreg import codec, datagram, discovery, interfaces
from mpreg.discovery import Answer
from mpreg.errors import NoGateway

from .support import free_udp_port

LO = [interfaces.Interface("lo", "127.0.0.1", "255.0.0.0", "127.255.255.255", True)]


def member(host="h", name="n1", addr=None):
    return {
        "addr": addr or {"V4": [[127, 0, 0, 1], 7700]},
        "id": 2**63 + 5,
        "name": name,
        "role": "node",
        "host": host,
        "started_ms": 1,
        "bump": 0,
    }


@pytest.mark.parametrize(
    "wire, expected",
    [
        ("127.0.0.1:7780", ("127.0.0.1", 7780)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:80", ("::1", 80)),
        ({"V4": [[10, 0, 0, 2], 7780]}, ("10.0.0.2", 7780)),
        ({"V6": [[0] * 15 + [1], 9]}, ("::1", 9)),
        ([[192, 168, 1, 2], 5], ("192.168.1.2", 5)),
        (["10.1.1.1", 5], ("10.1.1.1", 5)),
        (None, None),
        ("nonsense", None),
        ("host.example:80", None),
        ({"V4": "x"}, None),
    ],
)
def test_parse_address(wire, expected):
    assert discovery.parse_address(wire) == expected


def test_parse_answer_and_url():
    payload = codec.pack({"kind": "answer", "member": member(), "http": {"V4": [[0, 0, 0, 0], 7780]}})
    a = discovery.parse_answer(payload, ("127.0.0.5", 40000))
    assert a is not None
    assert a.member["addr"] == "127.0.0.1:7700"
    assert a.http == ("0.0.0.0", 7780)
    assert a.url == "ws://127.0.0.5:7780/"  # 0.0.0.0 takes the datagram's source
    no_http = discovery.parse_answer(codec.pack({"kind": "answer", "member": member(), "http": None}), ("127.0.0.1", 1))
    assert no_http is not None and no_http.url is None
    # The field may be missing altogether (a node without a gateway, an older node).
    old = discovery.parse_answer(codec.pack({"kind": "answer", "member": member()}), ("127.0.0.1", 1))
    assert old is not None and old.http is None
    assert discovery.parse_answer(codec.pack({"kind": "probe", "member": None}), ("127.0.0.1", 1)) is None
    assert discovery.parse_answer(b"\xc1", ("127.0.0.1", 1)) is None


def test_choose_prefers_this_host():
    far = Answer(("192.0.2.9", 1), member(host="other"), ("192.0.2.9", 7780))
    near_by_host = Answer(("192.0.2.10", 1), member(host="me"), ("192.0.2.10", 7780))
    near_by_ip = Answer(("192.0.2.11", 1), member(host="other"), ("192.0.2.11", 7780))
    loop = Answer(("127.0.0.1", 1), member(host="other"), ("127.0.0.1", 7781))
    none = Answer(("127.0.0.1", 1), member(host="me"), None)
    assert discovery.choose([none, far], "me", set()) is far
    assert discovery.choose([far, near_by_host], "me", set()) is near_by_host
    assert discovery.choose([far, near_by_ip], "me", {"192.0.2.11"}) is near_by_ip
    assert discovery.choose([far, loop], "me", set()) is loop
    assert discovery.choose([none], "me", set()) is None
    assert discovery.choose([], "me", set()) is None


def test_schedule_matches_the_rust_prober():
    assert [discovery._schedule_ms(n) for n in range(6)] == [0, 50, 200, 500, 1500, 2500]


CANDS = [
    interfaces.Candidate("lo", "127.0.0.1", "255.0.0.0", None, 0x49),
    interfaces.Candidate("eth0", "192.168.1.5", "255.255.255.0", "192.168.1.255", 0x1043),
    interfaces.Candidate("eth1", "10.0.0.5", "255.255.0.0", None, 0x1043),
    interfaces.Candidate("wg0", "10.9.0.1", "255.255.255.0", None, 0x91),  # up, no multicast
    interfaces.Candidate("eth2", "172.16.0.2", "255.255.255.0", None, 0x1002),  # down
]


def test_interface_selection_default_and_configured():
    default = interfaces.select(CANDS, [])
    assert [(i.name, i.broadcast) for i in default] == [
        ("lo", "127.255.255.255"),
        ("eth0", "192.168.1.255"),
        ("eth1", "10.0.255.255"),  # directed broadcast computed from the mask
    ]
    assert [i.broadcast for i in interfaces.select(CANDS, ["lo"])] == ["127.255.255.255"]
    assert [i.name for i in interfaces.select(CANDS, ["10.0.0.5", "wg0"])] == ["eth1", "wg0"]
    with pytest.raises(interfaces.UnknownInterface, match="eth9.*lo \\(127.0.0.1\\)"):
        interfaces.select(CANDS, ["eth9"])
    lo = interfaces.select(CANDS, ["lo"])[0]
    assert lo.contains("127.1.2.3") and not lo.contains("192.168.1.5")


def test_this_hosts_interfaces_are_read_without_sending():
    cands = interfaces.candidates()
    lo = [c for c in cands if c.loopback]
    assert lo and lo[0].ip.startswith("127.")
    assert "127.0.0.1" in interfaces.local_addresses(cands)
    assert [i.broadcast for i in interfaces.select(cands, ["lo"])] == ["127.255.255.255"]


class FakeNode:
    """Answers probes on the beacon port of loopback like a node (one thread)."""

    def __init__(self, port, cluster="fake", secret=None, http="127.0.0.1:7780", host="h"):
        self.tag = datagram.cluster_tag(cluster)
        self.secret = secret
        self.http = http
        self.host = host
        self.probes = []
        self.shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.shared.bind(("0.0.0.0", port))
        self.shared.settimeout(0.1)
        self.own = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.own.bind(("127.0.0.1", 0))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                data, src = self.shared.recvfrom(65536)
            except socket.timeout:
                continue
            try:
                d = datagram.open_datagram(data, self.tag, self.secret, int(time.time() * 1000))
            except datagram.Rejected:
                continue  # another cluster: a node stays silent
            self.probes.append((d, codec.unpack(d.payload), src))
            body = codec.pack({"kind": "answer", "member": member(self.host), "http": self.http})
            n += 1
            reply = datagram.seal(1, self.tag, self.secret, int(time.time() * 1000), datagram.Stamp(99, n, d.stamp.sender), body)
            self.own.sendto(reply, src)

    def close(self):
        self.stop.set()
        self.thread.join()
        self.shared.close()
        self.own.close()


@pytest.mark.parametrize("secret", [None, b"topsecret"])
def test_probe_finds_a_fake_node_on_loopback(tmp_path, secret):
    port = free_udp_port()
    node = FakeNode(port, secret=secret, http="0.0.0.0:7799")
    # A long discovery window: stopping at the first local answer is then far shorter,
    # however loaded the machine.
    env = {"MPREG_INTERFACES": "lo", "MPREG_BEACON_PORT": str(port), "MPREG_MDNS": "0", "MPREG_CLUSTER": "fake",
           "MPREG_DISCOVERY_WAIT_MS": "10000"}
    if secret:
        f = tmp_path / "secret"
        f.write_bytes(secret + b"\n")
        env["MPREG_SECRET_FILE"] = str(f)
    try:
        t0 = time.monotonic()
        url = discovery.find_gateway(None, env)
        elapsed = time.monotonic() - t0
    finally:
        node.close()
    assert url == "ws://127.0.0.1:7799/"
    assert elapsed < 5.0, "stops at the first local answer, not at the end of the window"
    d, payload, src = node.probes[0]
    assert payload == {"kind": "probe", "member": None}
    assert d.kind == datagram.KIND_BEACON and d.stamp.to == 0 and src[0] == "127.0.0.1"


def test_probe_ignores_nodes_without_a_gateway_and_says_what_it_tried():
    port = free_udp_port()
    node = FakeNode(port, http=None)
    env = {"MPREG_INTERFACES": "lo", "MPREG_BEACON_PORT": str(port), "MPREG_MDNS": "0",
           "MPREG_CLUSTER": "fake", "MPREG_DISCOVERY_WAIT_MS": "300"}
    try:
        with pytest.raises(NoGateway) as e:
            discovery.find_gateway(None, env)
    finally:
        node.close()
    msg = str(e.value)
    assert "MPREG_GATEWAY unset" in msg
    assert f"UDP port {port} on 127.255.255.255 (lo)" in msg
    assert "with a gateway" in msg and "--http" in msg
    assert "mDNS off" in msg
    assert len(node.probes) >= 3  # 0, 50, 200 ms


def test_other_cluster_is_not_answered_and_nothing_found():
    port = free_udp_port()
    node = FakeNode(port, cluster="fake")
    env = {"MPREG_INTERFACES": "lo", "MPREG_BEACON_PORT": str(port), "MPREG_MDNS": "0",
           "MPREG_CLUSTER": "another", "MPREG_DISCOVERY_WAIT_MS": "200"}
    try:
        with pytest.raises(NoGateway, match="no answer within 200 ms"):
            discovery.find_gateway(None, env)
    finally:
        node.close()


def test_explicit_addresses_win():
    assert discovery.find_gateway("127.0.0.1:9", {}) == "ws://127.0.0.1:9/"
    assert discovery.find_gateway(None, {"MPREG_GATEWAY": "ws://127.0.0.1:8/"}) == "ws://127.0.0.1:8/"


def test_bad_configuration_is_named():
    with pytest.raises(NoGateway, match="MPREG_INTERFACES"):
        discovery.find_gateway(None, {"MPREG_INTERFACES": "nosuchif0", "MPREG_MDNS": "0"})
    with pytest.raises(NoGateway, match="MPREG_BEACON_PORT"):
        discovery.find_gateway(None, {"MPREG_BEACON_PORT": "x", "MPREG_INTERFACES": "lo"})
