"""Exceptions: every failure of a call carries mpreg's code, message and details.

Codes are MPREG's (1000–1006); errors that happen in this client before or after the
server (no gateway found, connection lost, refused token) have ``code`` ``None``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MpregError",
    "ProtocolError",
    "CommandNotFound",
    "InternalError",
    "ExecutionFailed",
    "Timeout",
    "ClusterMismatch",
    "Busy",
    "NoGateway",
    "ConnectionLost",
    "Unauthorized",
    "error_from_wire",
    "CODES",
]


class MpregError(Exception):
    """A failure reported by mpreg (or by this client on its behalf).

    ``code`` is MPREG's error code (``None`` for client-side failures), ``message`` mpreg's
    message, ``details`` whatever the server attached (often a string, may be ``None``).
    """

    #: The code this class stands for (``None``: several or none).
    default_code: int | None = None

    def __init__(self, code: int | None, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __str__(self) -> str:
        prefix = f"[{self.code}] " if self.code is not None else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"details={self.details!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.details))


class ProtocolError(MpregError):
    """1000: the server did not understand a frame, or the server sent one this client
    cannot read (then ``code`` is ``None``)."""

    default_code = 1000


class CommandNotFound(MpregError):
    """1001: no node of the cluster offers the function."""

    default_code = 1001


class InternalError(MpregError):
    """1002: the server failed (also: a reply too large for a frame)."""

    default_code = 1002


class ExecutionFailed(MpregError):
    """1003: the function raised, got bad arguments, is not visible, or a workflow failed."""

    default_code = 1003


class Timeout(MpregError, TimeoutError):
    """1004: the call did not finish before its deadline (also a client-side deadline).

    Also a built-in :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    """

    default_code = 1004

    def __init__(self, code: int | None, message: str, details: Any = None) -> None:
        MpregError.__init__(self, code, message, details)

    def __str__(self) -> str:
        return MpregError.__str__(self)


class ClusterMismatch(MpregError):
    """1005: cluster id mismatch (MPREG's code; mpreg nodes refuse other clusters earlier)."""

    default_code = 1005


class Busy(MpregError):
    """1006: too many requests in flight (on the connection or at the provider); retry later."""

    default_code = 1006


class NoGateway(MpregError):
    """Discovery found no gateway; the message says everything that was tried."""


class ConnectionLost(MpregError, ConnectionError):
    """The WebSocket closed while a request waited for its reply."""

    def __init__(self, code: int | None, message: str, details: Any = None) -> None:
        MpregError.__init__(self, code, message, details)

    def __str__(self) -> str:
        return MpregError.__str__(self)


class Unauthorized(MpregError):
    """The gateway answered HTTP 401: missing or wrong token."""


#: Exception class per MPREG error code.
CODES: dict[int, type[MpregError]] = {
    cls.default_code: cls
    for cls in (
        ProtocolError,
        CommandNotFound,
        InternalError,
        ExecutionFailed,
        Timeout,
        ClusterMismatch,
        Busy,
    )
    if cls.default_code is not None
}


def error_from_wire(error: Any) -> MpregError:
    """The exception for a reply's ``error`` object (``{"code","message","details"}``).

    Unknown codes give a plain :class:`MpregError`; a malformed error object gives a
    :class:`ProtocolError` that shows it.
    """
    if not isinstance(error, dict):
        return ProtocolError(None, f"malformed error in reply: {error!r}", error)
    code = error.get("code")
    message = error.get("message")
    details = error.get("details")
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        return ProtocolError(None, f"malformed error in reply: {error!r}", error)
    cls = CODES.get(code, MpregError)
    return cls(code, message, details)
