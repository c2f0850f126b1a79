"""Zero-config: finding a gateway when no address is given.

Order: the ``url=`` argument, else ``MPREG_GATEWAY``, else the UDP beacon probe (and mDNS
when ``zeroconf`` is installed and ``MPREG_MDNS`` is not off).

The probe is what the Rust client does (``src/runtime/discovery/beacon.rs``): a sealed
``{"kind": "probe", "member": nil}`` beacon datagram is broadcast from an ephemeral UDP
socket to each selected interface's broadcast address on the beacon port, at 0, 50, 200
and 500 ms (then every second); every node answers unicast with
``{"kind": "answer", "member": {...}, "http": "ip:port" | nil}``. Answers without ``http``
come from nodes that serve no gateway and are ignored. Once a usable answer arrived, a
short grace lets nodes of this host answer too; one on this host is preferred (source
address local, or the member's ``host`` equal to this host's id).
"""

from __future__ import annotations

import ipaddress
import os
import random
import select as _select
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codec, datagram, interfaces
from .errors import NoGateway
from .settings import ConfigError, Settings, gateway_url

__all__ = [
    "Answer",
    "PROBE_SCHEDULE_MS",
    "GRACE_MS",
    "probe_payload",
    "parse_address",
    "parse_answer",
    "probe",
    "choose",
    "find_gateway",
]

#: When probes go out, in ms from the start (then every second), as the Rust prober.
PROBE_SCHEDULE_MS = (0, 50, 200, 500)
#: How long to keep listening after the first usable answer, for a node on this host.
GRACE_MS = 30
#: Largest datagram read.
MAX_DATAGRAM = 65536


@dataclass
class Answer:
    """One node's answer to a probe."""

    #: Where the datagram came from (ip, port).
    source: tuple[str, int]
    #: The member as announced (``addr``, ``id``, ``name``, ``role``, ``host``, ...).
    member: dict[str, Any] = field(default_factory=dict)
    #: The gateway's bound address (ip, port), or ``None`` when the node serves none.
    http: tuple[str, int] | None = None

    @property
    def url(self) -> str | None:
        """``ws://IP:PORT/`` of the gateway; an unspecified IP takes the source's."""
        if self.http is None:
            return None
        ip, port = self.http
        if ip in ("0.0.0.0", "::", ""):
            ip = self.source[0]
        host = f"[{ip}]" if ":" in ip else ip
        return f"ws://{host}:{port}/"


def probe_payload() -> bytes:
    """The MessagePack payload of a probe: ``{"kind": "probe", "member": nil}``."""
    return codec.pack({"kind": "probe", "member": None})


def parse_address(v: Any) -> tuple[str, int] | None:
    """An ``ip:port`` as the Rust node may encode it in MessagePack.

    ``rmp_serde`` writes a ``SocketAddr`` compactly as ``{"V4": [[a, b, c, d], port]}``
    (``{"V6": [[16 bytes], port]}``); a human-readable encoding is the string
    ``"ip:port"``. Both are accepted, as is a bare ``[ip, port]`` pair.
    """
    if v is None:
        return None
    if isinstance(v, str):
        host, sep, port = v.rpartition(":")
        if not sep:
            return None
        host = host.strip("[]")
        try:
            ipaddress.ip_address(host)
            return host, int(port)
        except ValueError:
            return None
    if isinstance(v, dict) and len(v) == 1:
        ((_, inner),) = v.items()
        return parse_address(inner)
    if isinstance(v, (list, tuple)) and len(v) == 2 and isinstance(v[1], int):
        ip = v[0]
        if isinstance(ip, (list, tuple, bytes)) and len(ip) in (4, 16):
            try:
                return str(ipaddress.ip_address(bytes(ip))), v[1]
            except ValueError:
                return None
        if isinstance(ip, str):
            try:
                return str(ipaddress.ip_address(ip)), v[1]
            except ValueError:
                return None
    return None


def parse_answer(payload: bytes, source: tuple[str, int]) -> Answer | None:
    """An :class:`Answer` from a beacon payload, or ``None`` when it is no answer."""
    try:
        p = codec.unpack(payload)
    except codec.DecodeError:
        return None
    if not isinstance(p, dict) or p.get("kind") != "answer":
        return None
    member = p.get("member")
    if not isinstance(member, dict):
        return None
    m = dict(member)
    addr = parse_address(m.get("addr"))
    if addr is not None:
        m["addr"] = f"{addr[0]}:{addr[1]}"
    return Answer(source=source, member=m, http=parse_address(p.get("http")))


class _Prober:
    """The probing socket and envelope of one discovery round."""

    def __init__(self, s: Settings, ifaces: list[interfaces.Interface]) -> None:
        self.settings = s
        self.ifaces = ifaces
        self.tag = datagram.cluster_tag(s.cluster)
        self.me = random.getrandbits(64) or 1
        self.counter = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sent = 0
        self.send_errors: list[str] = []
        self.dropped: dict[str, int] = {}

    def close(self) -> None:
        """Closes the socket."""
        self.sock.close()

    def broadcast(self) -> None:
        """One probe to each selected broadcast address, each sealed anew."""
        body = probe_payload()
        for i in self.ifaces:
            stamp = datagram.Stamp(self.me, self.counter, datagram.ANYONE)
            self.counter += 1
            data = datagram.seal(
                datagram.KIND_BEACON,
                self.tag,
                self.settings.secret,
                int(time.time() * 1000),
                stamp,
                body,
            )
            try:
                self.sock.sendto(data, (i.broadcast, self.settings.beacon_port))
                self.sent += 1
            except OSError as e:
                self.send_errors.append(f"{i.broadcast} ({i.name}): {e}")

    def receive(self, data: bytes, src: tuple[str, int]) -> Answer | None:
        """The answer in a received datagram, or ``None`` (counted by reason)."""
        if not any(i.contains(src[0]) for i in self.ifaces):
            self._drop("from another subnet")
            return None
        try:
            d = datagram.open_datagram(
                data, self.tag, self.settings.secret, int(time.time() * 1000)
            )
        except datagram.Rejected as e:
            self._drop(e.reason)
            return None
        if d.kind != datagram.KIND_BEACON:
            self._drop("malformed")
            return None
        if self.settings.secret is not None and d.stamp.to not in (datagram.ANYONE, self.me):
            self._drop("for another client")
            return None
        a = parse_answer(d.payload, src)
        if a is None:
            self._drop("malformed")
        return a

    def _drop(self, reason: str) -> None:
        """Counts a dropped datagram by reason (shown when nothing usable came)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


def _schedule_ms(n: int) -> int:
    """When the ``n``-th probe (from 0) goes out."""
    if n < len(PROBE_SCHEDULE_MS):
        return PROBE_SCHEDULE_MS[n]
    return PROBE_SCHEDULE_MS[-1] + 1000 * (n - len(PROBE_SCHEDULE_MS) + 1)


def probe(
    s: Settings, ifaces: list[interfaces.Interface], local: set[str]
) -> tuple[list[Answer], str]:
    """Probes for ``s.wait_ms`` at most and returns the answers and a summary of the round
    (for the error message when nothing usable came)."""
    p = _Prober(s, ifaces)
    answers: list[Answer] = []
    try:
        start = time.monotonic()
        deadline = start + s.wait_ms / 1000
        n = 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            next_probe = start + _schedule_ms(n) / 1000
            if now >= next_probe:
                p.broadcast()
                n += 1
                continue
            wait = min(next_probe, deadline) - now
            r, _, _ = _select.select([p.sock], [], [], max(wait, 0))
            if not r:
                continue
            try:
                data, src = p.sock.recvfrom(MAX_DATAGRAM)
            except OSError:
                continue  # e.g. ECONNREFUSED left by an ICMP error
            a = p.receive(data, src)
            if a is None:
                continue
            answers.append(a)
            if a.http is not None:
                deadline = min(deadline, time.monotonic() + GRACE_MS / 1000)
                if _is_local(a, s.host, local):
                    # Nothing can beat a gateway of this host: stop at once.
                    break
    finally:
        p.close()
    where = ", ".join(f"{i.broadcast} ({i.name})" for i in ifaces) or "no interface"
    summary = (
        f"beacon probe for cluster `{s.cluster}` to UDP port {s.beacon_port} on {where}: "
        f"{p.sent} probes sent"
    )
    if p.send_errors:
        summary += f", send errors: {'; '.join(p.send_errors)}"
    usable = sum(1 for a in answers if a.http is not None)
    if not answers:
        summary += f", no answer within {s.wait_ms} ms"
    else:
        names = ", ".join(str(a.member.get("name", "?")) for a in answers)
        summary += f", {len(answers)} answers ({names}), {usable} with a gateway"
        if not usable:
            summary += " (nodes serve no gateway: start one with `mpreg serve --http ADDR`)"
    if p.dropped:
        summary += ", dropped: " + ", ".join(f"{k} {v}" for k, v in sorted(p.dropped.items()))
    return answers, summary


def _is_local(a: Answer, host: str, local: set[str]) -> bool:
    """Whether an answer comes from a node of this host."""
    ip = a.source[0]
    try:
        if ipaddress.ip_address(ip).is_loopback:
            return True
    except ValueError:
        pass
    return ip in local or (bool(host) and a.member.get("host") == host)


def choose(answers: list[Answer], host: str, local: set[str]) -> Answer | None:
    """The answer to use: one with a gateway, on this host if any, else the first."""
    usable = [a for a in answers if a.http is not None]
    for a in usable:
        if _is_local(a, host, local):
            return a
    return usable[0] if usable else None


def _mdns_browse(s: Settings, ifaces: list[interfaces.Interface]) -> tuple[str | None, str]:
    """Browses ``_mpreg._tcp.local.`` for a TXT ``http=PORT`` of our cluster.

    Only called when ``zeroconf`` is importable and mDNS is on. Restricted to the selected
    interfaces' addresses. The TXT MAC (with a secret) is not verified here.
    """
    try:
        import zeroconf  # type: ignore[import-not-found]
    except ImportError:
        return None, "mDNS: not tried (the optional `zeroconf` package is not installed)"
    if s.mdns_port != 5353:
        return None, f"mDNS: not tried (MPREG_MDNS_PORT={s.mdns_port}; only 5353 can be browsed)"
    want = datagram.cluster_tag(s.cluster).hex()
    found: list[str] = []
    zc = zeroconf.Zeroconf(interfaces=[i.ip for i in ifaces] or zeroconf.InterfaceChoice.All)
    try:
        names: list[str] = []

        class _Listener:
            """Collects the names of the services the browser sees."""

            def add_service(self, zc_: Any, type_: str, name: str) -> None:
                """A service appeared: resolve it below."""
                names.append(name)

            def update_service(self, zc_: Any, type_: str, name: str) -> None:
                """Ignored: the first resolution is enough for one lookup."""

            def remove_service(self, zc_: Any, type_: str, name: str) -> None:
                """Ignored: the lookup lasts a second."""

        browser = zeroconf.ServiceBrowser(zc, "_mpreg._tcp.local.", _Listener())
        deadline = time.monotonic() + s.wait_ms / 1000
        seen: set[str] = set()
        while time.monotonic() < deadline and not found:
            time.sleep(0.05)
            for name in list(names):
                if name in seen:
                    continue
                seen.add(name)
                info = zc.get_service_info("_mpreg._tcp.local.", name, timeout=300)
                if info is None:
                    continue
                props = {
                    (k.decode() if isinstance(k, bytes) else k): (
                        v.decode() if isinstance(v, bytes) else v
                    )
                    for k, v in info.properties.items()
                }
                if props.get("cluster") not in (None, want) or not props.get("http"):
                    continue
                addrs = info.parsed_addresses(zeroconf.IPVersion.V4Only)
                if addrs:
                    found.append(f"ws://{addrs[0]}:{int(props['http'])}/")
        browser.cancel()
    finally:
        zc.close()
    if found:
        return found[0], "mDNS: found"
    return None, f"mDNS: no `_mpreg._tcp.local.` service with `http=` within {s.wait_ms} ms"


def find_gateway(url: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The WebSocket URL of a gateway: ``url``, else ``MPREG_GATEWAY``, else discovery.

    Raises :class:`NoGateway` naming everything that was tried.
    """
    env = os.environ if env is None else env
    try:
        if url:
            return gateway_url(url)
        if env.get("MPREG_GATEWAY"):
            return gateway_url(env["MPREG_GATEWAY"])
        s = Settings.from_env(env)
        cands = interfaces.candidates()
        ifaces = interfaces.select(cands, s.interfaces)
    except (ConfigError, interfaces.UnknownInterface) as e:
        raise NoGateway(None, f"no mpreg gateway: {e}") from None
    tried = ["no url given and MPREG_GATEWAY unset"]
    local = interfaces.local_addresses(cands)
    if s.beacon:
        answers, summary = probe(s, ifaces, local)
        a = choose(answers, s.host, local)
        if a is not None and a.url is not None:
            return a.url
        tried.append(summary)
    else:
        tried.append("beacon probe off (MPREG_BEACON=0)")
    if not s.mdns:
        tried.append("mDNS off (MPREG_MDNS)")
    else:
        found, summary = _mdns_browse(s, ifaces)
        if found:
            return found
        tried.append(summary)
    raise NoGateway(None, "no mpreg gateway found: " + "; ".join(tried))
