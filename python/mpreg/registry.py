"""Functions this process offers to the cluster (``@mpreg.register``).

A :class:`Registry` only records functions; they are offered when a client serves them
(``mpreg.serve()``, ``Client.serve()``, ``await AsyncClient.serve()``), through the
gateway's ``register`` role, and withdrawn by the node when that WebSocket closes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

__all__ = ["Function", "Registry", "REGISTRY", "VISIBILITIES"]

#: Visibilities a served function may have through the gateway.
VISIBILITIES = ("network", "host")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Function:
    """One function to serve."""

    #: The callable.
    func: Callable[..., Any]
    #: Name it is called by.
    name: str
    #: Its parameter names, positional ones then keyword-only ones (shown by
    #: ``mpreg nodes``); calls arrive with the caller's args and kwargs as sent.
    params: list[str] = field(default_factory=list)
    #: Resources it needs (matched against a call's ``locs``).
    resources: list[str] = field(default_factory=list)
    #: ``network`` (any host) or ``host`` (callers on this machine only).
    visibility: str = "network"

    @property
    def is_async(self) -> bool:
        """Whether it is a coroutine function (run on the event loop, not in a thread)."""
        f = self.func
        while hasattr(f, "__wrapped__") and not inspect.iscoroutinefunction(f):
            f = f.__wrapped__
        return inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(
            getattr(self.func, "__call__", None)
        )

    def wire(self) -> dict[str, Any]:
        """The entry of a ``register`` frame."""
        return {
            "name": self.name,
            "params": self.params,
            "resources": self.resources,
            "visibility": self.visibility,
        }

    @classmethod
    def of(
        cls,
        func: Callable[..., Any],
        name: str | None = None,
        resources: Iterable[str] | None = None,
        visibility: str = "network",
    ) -> Function:
        """Describes ``func``; checks the name and the visibility."""
        if not callable(func):
            raise TypeError(f"cannot register {func!r}: not callable")
        n = name if name is not None else getattr(func, "__name__", None)
        if not n or not isinstance(n, str):
            raise ValueError(f"cannot register {func!r}: give it a name (name=...)")
        if visibility not in VISIBILITIES:
            raise ValueError(
                f"visibility {visibility!r} of `{n}`: expected one of {', '.join(VISIBILITIES)}"
            )
        if isinstance(resources, str):
            resources = [resources]
        return cls(func, n, _params(func), list(resources or []), visibility)


def _params(func: Callable[..., Any]) -> list[str]:
    """Names of the parameters: positional ones, then keyword-only ones."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    ps = list(sig.parameters.values())
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in ps if p.kind in kinds] + [
        p.name for p in ps if p.kind == inspect.Parameter.KEYWORD_ONLY
    ]


class Registry:
    """Functions recorded for serving, by name."""

    def __init__(self) -> None:
        self.functions: dict[str, Function] = {}

    def add(self, f: Function) -> Function:
        """Records ``f``; a second function of the same name replaces the first."""
        self.functions[f.name] = f
        return f

    @overload
    def register(self, func: F) -> F: ...

    @overload
    def register(
        self,
        func: None = None,
        *,
        name: str | None = None,
        resources: Iterable[str] | None = None,
        visibility: str = "network",
    ) -> Callable[[F], F]: ...

    def register(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        resources: Iterable[str] | None = None,
        visibility: str = "network",
    ) -> Any:
        """Decorator (bare or with arguments) recording a function; returns it unchanged."""

        def deco(f: F) -> F:
            """Records ``f`` and returns it unchanged."""
            self.add(Function.of(f, name, resources, visibility))
            return f

        if func is not None:
            return deco(func)  # type: ignore[arg-type]
        return deco

    def __iter__(self) -> Any:
        return iter(list(self.functions.values()))

    def __len__(self) -> int:
        return len(self.functions)

    def __contains__(self, name: object) -> bool:
        return name in self.functions


#: The process-wide registry filled by ``@mpreg.register``.
REGISTRY = Registry()
