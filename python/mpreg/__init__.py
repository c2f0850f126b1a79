"""mpreg for Python: call, serve, publish and subscribe through an mpreg node's gateway.

Zero-config::

    import mpreg
    print(mpreg.call("echo", "hi"))      # finds a node of the LAN by its beacon

The module-level functions use one process-wide :class:`Client`, connected on first use
(``url``: ``MPREG_GATEWAY``, else discovery). ``@mpreg.register`` records functions that
:func:`serve` offers to the cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .blocking import Client, Subscription
from .client import AsyncClient, AsyncSubscription, connect
from .discovery import find_gateway
from .errors import (
    Busy,
    ClusterMismatch,
    CommandNotFound,
    ConnectionLost,
    ExecutionFailed,
    InternalError,
    MpregError,
    NoGateway,
    ProtocolError,
    Timeout,
    Unauthorized,
)
from .message import Message
from .registry import REGISTRY, Function, Registry

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncSubscription",
    "Busy",
    "Client",
    "ClusterMismatch",
    "CommandNotFound",
    "ConnectionLost",
    "ExecutionFailed",
    "Function",
    "InternalError",
    "Message",
    "MpregError",
    "NoGateway",
    "ProtocolError",
    "Registry",
    "Subscription",
    "Timeout",
    "Unauthorized",
    "call",
    "close",
    "connect",
    "default_client",
    "find_gateway",
    "publish",
    "register",
    "serve",
    "subscribe",
    "workflow",
]

_default: Client | None = None
_default_lock = threading.Lock()


def default_client() -> Client:
    """The process-wide client, connected on first use (and again after it was closed or
    its connection was lost)."""
    global _default
    with _default_lock:
        if _default is None or not _default.connected:
            old, _default = _default, None
            if old is not None:
                try:
                    old.close()
                except MpregError:
                    pass
            _default = Client()
        return _default


def close() -> None:
    """Closes the process-wide client (functions it served are withdrawn)."""
    global _default
    with _default_lock:
        c, _default = _default, None
    if c is not None:
        c.close()


def call(
    fun: str,
    *args: Any,
    locs: Iterable[str] | str | None = None,
    scope: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    """Calls ``fun(*args, **kwargs)`` somewhere in the cluster and returns its result."""
    return default_client().call(fun, *args, locs=locs, scope=scope, timeout=timeout, **kwargs)


def workflow(
    cmds: list[Mapping[str, Any]], *, all: bool = False, timeout: float | None = None
) -> dict[str, Any]:
    """Runs MPREG commands as one workflow; returns the sink commands' results by name."""
    return default_client().workflow(cmds, all=all, timeout=timeout)


def publish(topic: str, message: Any, *, confirm: bool = False) -> int:
    """Publishes ``message`` on ``topic``; returns the nodes with a matching subscriber
    that were sent it (with ``confirm=True``: the subscribers that acknowledged)."""
    return default_client().publish(topic, message, confirm=confirm)


def subscribe(*patterns: str, group: str | None = None) -> Subscription:
    """Subscribes to topic patterns; iterate the result for :class:`Message` objects."""
    return default_client().subscribe(*patterns, group=group)


#: ``@mpreg.register`` or ``@mpreg.register(name=..., resources=[...], visibility=...)``:
#: records a function for :func:`serve`.
register = REGISTRY.register


def serve() -> None:
    """Offers every ``@mpreg.register`` function to the cluster and answers calls until
    the connection ends (blocks; Ctrl-C stops it)."""
    default_client().serve()
