"""What a subscription yields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Message"]


@dataclass(frozen=True)
class Message:
    """One publication received by a subscription."""

    #: The topic it was published on, e.g. ``sensors.a.temp``.
    topic: str
    #: The published value (any JSON).
    message: Any
    #: Publications dropped on this subscription since the previous one (0 normally): the
    #: gateway drops the oldest when the client reads too slowly.
    dropped: int = 0
    #: The subscription id the gateway gave.
    subscription: str = ""
