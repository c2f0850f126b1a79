"""The synchronous client: an :class:`~mpreg.client.AsyncClient` driven from any thread.

All sync clients of a process share one background thread running an asyncio loop; a
method call hands its coroutine to that loop and waits. Served sync functions run in the
client's thread pool, so they may themselves use the sync API; code running *on* that
loop (an async served function) must use ``AsyncClient`` instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from .client import AsyncClient, AsyncSubscription
from .errors import ConnectionLost, Timeout
from .message import Message
from .registry import Function

__all__ = ["Client", "Subscription", "background_loop"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None
_loop_lock = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's background event loop (started on first use, a daemon thread)."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None or not _loop_thread or not _loop_thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                """The loop thread's body."""
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            t = threading.Thread(target=run, name="mpreg-loop", daemon=True)
            t.start()
            ready.wait()
            _loop, _loop_thread = loop, t
        return _loop


def _run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Runs ``coro`` on the background loop and waits for it."""
    loop = background_loop()
    if threading.current_thread() is _loop_thread:
        coro.close()
        raise RuntimeError(
            "the sync mpreg API cannot be used on mpreg's own event loop (inside an async "
            "served function): use `await` with an AsyncClient there"
        )
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return fut.result(timeout)
    except Timeout:
        raise  # mpreg's own (a TimeoutError too): not the wait here
    except concurrent.futures.TimeoutError:
        fut.cancel()
        raise Timeout(None, f"no result within {timeout} s") from None
    except KeyboardInterrupt:
        fut.cancel()
        raise


class Subscription:
    """Publications matching some patterns; iterate it to get :class:`Message` objects.

    ``close()`` (or leaving a ``with`` block) unsubscribes and ends the iteration.
    """

    def __init__(self, inner: AsyncSubscription) -> None:
        self._inner = inner

    @property
    def id(self) -> str | None:
        """The gateway's id of this subscription."""
        return self._inner.id

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        try:
            return _run(self._inner.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def get(self, timeout: float | None = None) -> Message:
        """The next message; :class:`~mpreg.Timeout` when none comes in ``timeout`` s."""
        try:
            return _run(self._inner.get(timeout))
        except StopAsyncIteration:
            raise ConnectionLost(None, "subscription closed") from None

    def close(self) -> None:
        """Unsubscribes."""
        _run(self._inner.close())

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Client:
    """A synchronous connection to one mpreg gateway (same arguments as
    :class:`~mpreg.AsyncClient`). Connects at once; ``close()`` or ``with`` ends it."""

    def __init__(self, url: str | None = None, token: str | None = None, **options: Any) -> None:
        self._async = AsyncClient(url, token, **options)
        _run(self._async.connect())

    @property
    def url(self) -> str | None:
        """The gateway's WebSocket URL."""
        return self._async.url

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""
        return self._async.connected

    @property
    def aio(self) -> AsyncClient:
        """The underlying :class:`~mpreg.AsyncClient` (for use on the background loop)."""
        return self._async

    def call(
        self,
        fun: str,
        *args: Any,
        locs: Iterable[str] | str | None = None,
        scope: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Calls ``fun`` and returns its result (see :meth:`AsyncClient.call`)."""
        return _run(
            self._async.call(fun, *args, locs=locs, scope=scope, timeout=timeout, **kwargs)
        )

    def workflow(
        self,
        cmds: list[Mapping[str, Any]],
        *,
        all: bool = False,
        timeout: float | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """Runs a workflow (see :meth:`AsyncClient.workflow`)."""
        return _run(self._async.workflow(cmds, all=all, timeout=timeout, scope=scope))

    def publish(self, topic: str, message: Any, *, confirm: bool = False) -> int:
        """Publishes (see :meth:`AsyncClient.publish`)."""
        return _run(self._async.publish(topic, message, confirm=confirm))

    def subscribe(self, *patterns: str, group: str | None = None) -> Subscription:
        """Subscribes at once and returns the iterator of messages."""
        inner = self._async.subscribe(*patterns, group=group)
        _run(inner.start())
        return Subscription(inner)

    def register(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        resources: Iterable[str] | None = None,
        visibility: str = "network",
    ) -> Any:
        """Decorator recording a function of this client (served by :meth:`serve`)."""
        return self._async.register(
            func, name=name, resources=resources, visibility=visibility
        )

    def offer(self, functions: Iterable[Function] | None = None) -> list[str]:
        """Registers the functions with the node now and returns (calls are answered in
        the background from then on). Returns the names registered."""
        return _run(self._async.offer(functions))

    def withdraw(self, *names: str) -> list[str]:
        """Unregisters functions served by this client."""
        return _run(self._async.withdraw(*names))

    def serve(self, functions: Iterable[Function] | None = None) -> None:
        """Offers the functions (this client's and ``@mpreg.register``'s) and blocks,
        answering calls, until the connection ends or Ctrl-C."""
        _run(self._async.serve(functions))

    def close(self) -> None:
        """Closes the connection (the node withdraws this client's functions)."""
        _run(self._async.close())

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
