"""The environment this client reads (the same ``MPREG_*`` variables as the Rust node).

Every reader takes an optional mapping so tests can pass a fabricated environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_BEACON_PORT",
    "DEFAULT_CLUSTER",
    "DEFAULT_DISCOVERY_WAIT_MS",
    "Settings",
    "ConfigError",
    "host_id",
    "gateway_url",
    "read_token",
]

#: Default UDP port of the discovery beacon (Rust ``DEFAULT_BEACON_PORT``).
DEFAULT_BEACON_PORT = 7701
#: Default cluster id (Rust ``Config::default().cluster``).
DEFAULT_CLUSTER = "default"
#: How long discovery waits for answers by default (Rust ``DEFAULT_DISCOVERY_WAIT``).
DEFAULT_DISCOVERY_WAIT_MS = 1500


class ConfigError(ValueError):
    """An ``MPREG_*`` variable has a value that cannot be used; the message names it."""


def _bool(name: str, value: str) -> bool:
    """Parses a boolean the way the Rust node does (1/0, true/false, yes/no, on/off)."""
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r}: expected 1/0, true/false, yes/no or on/off")


def _int(name: str, value: str, lo: int, hi: int) -> int:
    """Parses an integer in ``lo..=hi``."""
    try:
        n = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r}: not an integer") from None
    if not lo <= n <= hi:
        raise ConfigError(f"{name}={value!r}: must be between {lo} and {hi}")
    return n


def _list(value: str) -> list[str]:
    """A comma-separated list, trimmed, empty entries dropped."""
    return [x.strip() for x in value.split(",") if x.strip()]


@dataclass
class Settings:
    """Discovery settings from the environment."""

    #: Cluster id (``MPREG_CLUSTER``).
    cluster: str = DEFAULT_CLUSTER
    #: Beacon UDP port (``MPREG_BEACON_PORT``).
    beacon_port: int = DEFAULT_BEACON_PORT
    #: Interfaces to probe on, names or IPv4 addresses (``MPREG_INTERFACES``); empty =
    #: loopback plus every up, multicast-capable IPv4 interface.
    interfaces: list[str] = field(default_factory=list)
    #: Whether to browse mDNS (``MPREG_MDNS``), when ``zeroconf`` is installed.
    mdns: bool = True
    #: Whether the beacon probe is used (``MPREG_BEACON``).
    beacon: bool = True
    #: Shared secret (from ``MPREG_SECRET_FILE``), or ``None``.
    secret: bytes | None = None
    #: How long to wait for answers, in ms (``MPREG_DISCOVERY_WAIT_MS``).
    wait_ms: int = DEFAULT_DISCOVERY_WAIT_MS
    #: mDNS port (``MPREG_MDNS_PORT``); only the standard 5353 can be browsed here.
    mdns_port: int = 5353
    #: This host's identity (``MPREG_HOST``, else the machine id, else the hostname).
    host: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Reads the ``MPREG_*`` variables of ``env`` (default ``os.environ``)."""
        env = os.environ if env is None else env
        s = cls()
        if "MPREG_CLUSTER" in env:
            s.cluster = env["MPREG_CLUSTER"]
            if not s.cluster:
                raise ConfigError("MPREG_CLUSTER must not be empty")
        if "MPREG_BEACON_PORT" in env:
            s.beacon_port = _int("MPREG_BEACON_PORT", env["MPREG_BEACON_PORT"], 1, 65535)
        if "MPREG_INTERFACES" in env:
            s.interfaces = _list(env["MPREG_INTERFACES"])
        if "MPREG_MDNS" in env:
            s.mdns = _bool("MPREG_MDNS", env["MPREG_MDNS"])
        if "MPREG_BEACON" in env:
            s.beacon = _bool("MPREG_BEACON", env["MPREG_BEACON"])
        if "MPREG_MDNS_PORT" in env:
            s.mdns_port = _int("MPREG_MDNS_PORT", env["MPREG_MDNS_PORT"], 1, 65535)
        if "MPREG_DISCOVERY_WAIT_MS" in env:
            s.wait_ms = _int(
                "MPREG_DISCOVERY_WAIT_MS", env["MPREG_DISCOVERY_WAIT_MS"], 0, 3_600_000
            )
        if env.get("MPREG_SECRET_FILE"):
            s.secret = read_secret(Path(env["MPREG_SECRET_FILE"]))
        s.host = host_id(env.get("MPREG_HOST"))
        return s


def read_secret(path: Path) -> bytes:
    """The shared secret in ``path``: its first non-blank line, trailing whitespace removed
    (as the Rust node reads its primary key: a secret file may list several, one per line,
    the primary first; see ``mpreg keys``)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read secret file {path} (MPREG_SECRET_FILE): {e}") from None
    for line in data.split(b"\n"):
        key = line.rstrip(b" \t\r\n\x0b\x0c")
        if key:
            return key
    raise ConfigError(f"secret file {path} is empty")


def host_id(configured: str | None = None) -> str:
    """This host's identity, derived as the Rust ``config::host_id``: ``MPREG_HOST``, else
    ``/etc/machine-id``, ``/var/lib/dbus/machine-id``, the kernel hostname, ``/etc/hostname``,
    else ``unknown-host``."""
    if configured:
        return configured
    for p in (
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
        "/etc/hostname",
    ):
        try:
            s = Path(p).read_text().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if s:
            return s
    return "unknown-host"


def gateway_url(value: str) -> str:
    """A WebSocket URL from ``MPREG_GATEWAY`` or a ``url=`` argument: ``ws://host:port``,
    ``wss://...``, ``http(s)://...`` (turned into ws) or a bare ``host:port``."""
    v = value.strip()
    if not v:
        raise ConfigError("empty gateway address")
    if v.startswith(("ws://", "wss://")):
        url = v
    elif v.startswith("http://"):
        url = "ws://" + v[len("http://") :]
    elif v.startswith("https://"):
        url = "wss://" + v[len("https://") :]
    elif "://" in v:
        raise ConfigError(f"gateway address {v!r}: expected ws://host:port")
    else:
        url = "ws://" + v
    scheme, rest = url.split("://", 1)
    if "/" not in rest:
        url += "/"
    return url


def read_token(token: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The bearer token: ``token``, else ``MPREG_HTTP_TOKEN``, else the trimmed contents of
    the file named by ``MPREG_HTTP_TOKEN_FILE``, else ``None``."""
    if token:
        return token
    env = os.environ if env is None else env
    if env.get("MPREG_HTTP_TOKEN"):
        return env["MPREG_HTTP_TOKEN"].strip()
    path = env.get("MPREG_HTTP_TOKEN_FILE")
    if path:
        try:
            t = Path(path).read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read token file {path} (MPREG_HTTP_TOKEN_FILE): {e}") from None
        return t or None
    return None
