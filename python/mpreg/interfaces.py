"""Which network interfaces the discovery probe is sent on.

:func:`candidates` reads this host's IPv4 interfaces on Linux (``socket.if_nameindex()``
plus ``ioctl`` ``SIOCGIFFLAGS``/``SIOCGIFADDR``/``SIOCGIFNETMASK``/``SIOCGIFBRDADDR``; it
only reads, it sends nothing); the pure :func:`select` picks among them like the Rust node
(``src/runtime/discovery/interfaces.rs``): the configured names or addresses, else loopback
plus every up, multicast-capable IPv4 interface. Loopback's broadcast address is
127.255.255.255 (Linux delivers it to every node bound to the beacon port).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from dataclasses import dataclass

__all__ = [
    "Candidate",
    "Interface",
    "LOOPBACK_BROADCAST",
    "candidates",
    "select",
    "UnknownInterface",
]

#: Broadcast address used on loopback.
LOOPBACK_BROADCAST = "127.255.255.255"

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_MULTICAST = 0x1000

SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFBRDADDR = 0x8919
SIOCGIFNETMASK = 0x891B


class UnknownInterface(ValueError):
    """A configured interface matches no IPv4 interface; the message lists what exists."""


@dataclass(frozen=True)
class Candidate:
    """One IPv4 interface as the OS reports it."""

    name: str
    ip: str
    netmask: str
    broadcast: str | None
    flags: int | None

    @property
    def loopback(self) -> bool:
        """Whether this is a loopback interface."""
        return ipaddress.IPv4Address(self.ip).is_loopback or bool(
            self.flags is not None and self.flags & IFF_LOOPBACK
        )

    def default_pick(self) -> bool:
        """Part of the default selection: loopback when up, others when up and
        multicast-capable; unreadable flags keep the interface (as in Rust)."""
        if self.flags is None:
            return True
        up = bool(self.flags & IFF_UP)
        return up and (self.loopback or bool(self.flags & IFF_MULTICAST))

    def matches(self, entry: str) -> bool:
        """Whether configured ``entry`` (a name or an IPv4 address) names this one."""
        return entry == self.name or entry == self.ip


@dataclass(frozen=True)
class Interface:
    """A selected interface: where probes go and which sources answers may come from."""

    name: str
    ip: str
    netmask: str
    broadcast: str
    loopback: bool

    def contains(self, ip: str) -> bool:
        """Whether ``ip`` lies in this interface's subnet."""
        try:
            net = ipaddress.IPv4Network(f"{self.ip}/{self.netmask}", strict=False)
            return ipaddress.IPv4Address(ip) in net
        except ValueError:
            return False


def _to_interface(c: Candidate) -> Interface:
    """The interface a selected candidate becomes."""
    if c.loopback:
        bcast = LOOPBACK_BROADCAST
    elif c.broadcast:
        bcast = c.broadcast
    else:
        net = ipaddress.IPv4Network(f"{c.ip}/{c.netmask}", strict=False)
        bcast = str(net.broadcast_address)
    return Interface(c.name, c.ip, c.netmask, bcast, c.loopback)


def select(cands: list[Candidate], configured: list[str]) -> list[Interface]:
    """The interfaces to probe on: exactly the ``configured`` ones (names or addresses),
    else the default pick. An entry that matches nothing raises :class:`UnknownInterface`."""
    if configured:
        picked: list[Candidate] = []
        for entry in configured:
            entry = entry.strip()
            found = [c for c in cands if c.matches(entry)]
            if not found:
                existing = ", ".join(f"{c.name} ({c.ip})" for c in cands) or "none with an IPv4 address"
                raise UnknownInterface(
                    f"discovery interface `{entry}` (MPREG_INTERFACES) matches no IPv4 "
                    f"interface name or address; interfaces here: {existing}"
                )
            picked.extend(found)
    else:
        picked = [c for c in cands if c.default_pick()]
    out: list[Interface] = []
    for c in picked:
        if not any(i.name == c.name and i.ip == c.ip for i in out):
            out.append(_to_interface(c))
    return out


def _ioctl_addr(sock: socket.socket, request: int, name: bytes) -> str | None:
    """The IPv4 address an ``SIOCGIF*ADDR`` ioctl reports for ``name``, or ``None``."""
    import fcntl

    try:
        res = fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name[:15]))
    except OSError:
        return None
    family = struct.unpack_from("H", res, 16)[0]
    if family != socket.AF_INET:
        return None
    return socket.inet_ntoa(res[20:24])


def _ioctl_flags(sock: socket.socket, name: bytes) -> int | None:
    """The ``IFF_*`` flags of ``name``, or ``None``."""
    import fcntl

    try:
        res = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, struct.pack("256s", name[:15]))
    except OSError:
        return None
    return struct.unpack_from("H", res, 16)[0]


def candidates() -> list[Candidate]:
    """This host's IPv4 interfaces (one address each: the primary one).

    Linux only (ioctl numbers); elsewhere only loopback is known. Reads, sends nothing.
    """
    if not sys.platform.startswith("linux"):
        return [Candidate("lo", "127.0.0.1", "255.0.0.0", None, IFF_UP | IFF_LOOPBACK)]
    out: list[Candidate] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            raw = name.encode()
            ip = _ioctl_addr(s, SIOCGIFADDR, raw)
            if ip is None:
                continue
            flags = _ioctl_flags(s, raw)
            netmask = _ioctl_addr(s, SIOCGIFNETMASK, raw) or "255.255.255.255"
            bcast = None
            if flags is not None and flags & IFF_BROADCAST:
                bcast = _ioctl_addr(s, SIOCGIFBRDADDR, raw)
            out.append(Candidate(name, ip, netmask, bcast, flags))
    return out


def local_addresses(cands: list[Candidate] | None = None) -> set[str]:
    """Every IPv4 address of this host (for "is this answer from this host?")."""
    cands = candidates() if cands is None else cands
    return {c.ip for c in cands}
