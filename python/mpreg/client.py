"""The asyncio client: one WebSocket to a node's gateway, many requests in flight on it.

Every request carries a fresh ULID in ``u``; a background reader task matches replies by
``u``, routes ``message`` pushes to their subscription and runs ``invoke`` frames for the
functions this client serves (sync ones in a thread pool, async ones on the loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from . import discovery
from .errors import (
    ConnectionLost,
    MpregError,
    ProtocolError,
    Timeout,
    Unauthorized,
    error_from_wire,
)
from .message import Message
from .registry import REGISTRY, Function, Registry
from .settings import read_token
from .ulid import new_ulid

try:  # websockets >= 13: the new asyncio implementation
    from websockets.asyncio.client import connect as _ws_connect

    _HEADERS_ARG = "additional_headers"
except ImportError:  # websockets 12: the legacy one
    from websockets.client import connect as _ws_connect  # type: ignore[no-redef]

    _HEADERS_ARG = "extra_headers"
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["AsyncClient", "AsyncSubscription", "connect", "MAX_FRAME", "MAX_IN_FLIGHT"]

log = logging.getLogger("mpreg")

#: Largest frame the gateway accepts (and sends): 1 MiB.
MAX_FRAME = 1 << 20
#: Requests in flight at most per connection (the gateway answers "busy" above); more
#: wait here for a slot instead of failing.
MAX_IN_FLIGHT = 256
#: Scopes a call may be limited to.
SCOPES = ("network", "host", "node")

_CONNECT_PARAMS = set(inspect.signature(_ws_connect).parameters)


def _dumps(obj: Any) -> str:
    """Compact JSON, as MPREG's client sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _command(cmd: Mapping[str, Any]) -> dict[str, Any]:
    """A workflow command with all five fields (``name`` defaults to ``fun``)."""
    if not isinstance(cmd, Mapping) or "fun" not in cmd:
        raise ValueError(f"a workflow command is a dict with at least `fun`: {cmd!r}")
    out = dict(cmd)
    out.setdefault("name", cmd["fun"])
    out["args"] = list(out.get("args") or [])
    out["kwargs"] = dict(out.get("kwargs") or {})
    out["locs"] = _locs(out.get("locs"))
    return out


def _locs(locs: Iterable[str] | str | None) -> list[str]:
    """``locs`` as the list the wire wants."""
    if locs is None:
        return []
    if isinstance(locs, str):
        return [locs]
    return list(locs)


class AsyncSubscription:
    """Publications matching some patterns; ``async for m in sub`` yields :class:`Message`.

    ``await client.subscribe(...)`` subscribes at once; iterating an un-awaited one
    subscribes on the first step. ``await sub.close()`` unsubscribes.
    """

    def __init__(self, client: AsyncClient, patterns: list[str], group: str | None) -> None:
        self.client = client
        self.patterns = patterns
        self.group = group
        #: The gateway's id of this subscription, once subscribed.
        self.id: str | None = None
        self.queue: asyncio.Queue[Message | BaseException] = asyncio.Queue()
        self._closed = False

    async def start(self) -> AsyncSubscription:
        """Subscribes (once)."""
        if self.id is None:
            await self.client._subscribe(self)
        return self

    def __await__(self) -> Any:
        return self.start().__await__()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        await self.start()
        if self._closed and self.queue.empty():
            raise StopAsyncIteration
        item = await self.queue.get()
        if isinstance(item, StopAsyncIteration):
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    async def get(self, timeout: float | None = None) -> Message:
        """The next message; :class:`Timeout` when none comes within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except MpregError:
            raise
        except asyncio.TimeoutError:
            raise Timeout(None, f"no message on {self.patterns} within {timeout} s") from None

    async def close(self) -> None:
        """Unsubscribes; iteration then ends."""
        if self._closed:
            return
        self._closed = True
        sid = self.id
        if sid is not None:
            self.client._subscriptions.pop(sid, None)
            if self.client.connected:
                try:
                    await self.client._request("unsubscribe", {"subscription": sid})
                except (ConnectionLost, MpregError):
                    pass
        self.queue.put_nowait(StopAsyncIteration())

    async def __aenter__(self) -> AsyncSubscription:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncClient:
    """A connection to one mpreg gateway.

    ``url``: ``ws://host:port`` (or ``host:port``); default ``MPREG_GATEWAY``, else
    zero-config discovery. ``token``: bearer token; default ``MPREG_HTTP_TOKEN`` or the file
    named by ``MPREG_HTTP_TOKEN_FILE``. It connects on first use, or with
    :meth:`connect` / ``async with``.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        open_timeout: float = 10.0,
        max_in_flight: int = 64,
        workers: int | None = None,
        registry: Registry | None = None,
    ) -> None:
        self._url_arg = url
        self._token_arg = token
        self.open_timeout = open_timeout
        #: Served calls this client runs at once (sent in ``register``; above, the caller
        #: gets "busy").
        self.max_in_flight = max_in_flight
        #: Functions of this client (served with the process-wide ones).
        self.registry = registry if registry is not None else Registry()
        #: The gateway's URL once connected.
        self.url: str | None = None
        self._ws: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[asyncio.Future[Any], Callable[[Any], None] | None]] = {}
        self._subscriptions: dict[str, AsyncSubscription] = {}
        self._served: dict[str, Function] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._slots: asyncio.Semaphore | None = None
        self._connect_lock: asyncio.Lock | None = None
        self._closing = False
        self._closed_reason: str | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._workers = workers or max_in_flight

    # ---- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the WebSocket is open (and its reader running)."""
        return self._ws is not None and self._reader is not None and not self._reader.done()

    async def connect(self) -> AsyncClient:
        """Finds the gateway (see :func:`mpreg.discovery.find_gateway`) and connects."""
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self.connected:
                return self
            if self._closing:
                raise ConnectionLost(None, "client closed")
            loop = asyncio.get_running_loop()
            url = await loop.run_in_executor(None, discovery.find_gateway, self._url_arg)
            token = read_token(self._token_arg)
            kwargs: dict[str, Any] = {
                "max_size": 2 * MAX_FRAME,
                "open_timeout": self.open_timeout,
            }
            if token:
                kwargs[_HEADERS_ARG] = {"Authorization": f"Bearer {token}"}
            if "proxy" in _CONNECT_PARAMS:
                kwargs["proxy"] = None  # never route a LAN gateway through an HTTP proxy
            try:
                self._ws = await _ws_connect(url, **kwargs)
            except InvalidHandshake as e:
                status = getattr(e, "status_code", None) or getattr(
                    getattr(e, "response", None), "status_code", None
                )
                if status == 401:
                    raise Unauthorized(
                        None,
                        f"gateway {url} refused the connection (HTTP 401): "
                        + ("wrong token" if token else "it needs a token (token=, "
                           "MPREG_HTTP_TOKEN or MPREG_HTTP_TOKEN_FILE)"),
                    ) from None
                raise ConnectionLost(None, f"cannot open a WebSocket to {url}: {e}") from None
            except (OSError, asyncio.TimeoutError) as e:
                raise ConnectionLost(None, f"cannot connect to gateway {url}: {e}") from None
            self.url = url
            self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
            self._closed_reason = None
            self._reader = asyncio.create_task(self._read(), name="mpreg-reader")
            return self

    async def _ensure(self) -> None:
        """Connects if not connected yet."""
        if not self.connected:
            if self._ws is not None and self._closed_reason:
                raise ConnectionLost(None, self._closed_reason)
            await self.connect()

    async def close(self) -> None:
        """Closes the WebSocket (the node withdraws the functions served through it)."""
        self._closing = True
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                await ws.close()
            except Exception:  # noqa: BLE001 - closing must not raise
                pass
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), 5)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):  # noqa: BLE001
                self._reader.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ---- requests ---------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        """Sends one frame as compact JSON text."""
        text = _dumps(frame)
        if len(text.encode("utf-8")) > MAX_FRAME:
            raise MpregError(
                None,
                f"request of {len(text.encode('utf-8'))} bytes exceeds the gateway's "
                f"1 MiB frame limit",
            )
        ws = self._ws
        if ws is None:
            raise ConnectionLost(None, self._closed_reason or "not connected")
        try:
            await ws.send(text)
        except ConnectionClosed as e:
            raise ConnectionLost(None, f"connection to {self.url} closed: {e}") from None

    async def _request(
        self,
        role: str,
        fields: dict[str, Any],
        *,
        timeout: float | None = None,
        on_reply: Callable[[Any], None] | None = None,
    ) -> Any:
        """Sends ``{"role": role, "u": <ulid>, **fields}`` and returns the reply's ``r``.

        ``on_reply`` runs in the reader as soon as the reply arrives (before any later
        frame is handled). ``timeout`` bounds the wait here (the server has its own).
        """
        await self._ensure()
        assert self._slots is not None
        async with self._slots:
            u = new_ulid()
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[u] = (fut, on_reply)
            try:
                await self._send({"role": role, "u": u, **fields})
                if timeout is None:
                    return await fut
                try:
                    return await asyncio.wait_for(asyncio.shield(fut), timeout)
                except MpregError:
                    raise  # the server's answer (its 1004 is a TimeoutError too)
                except asyncio.TimeoutError:
                    raise Timeout(
                        None, f"no reply to `{role}` from {self.url} within {timeout:g} s"
                    ) from None
            finally:
                self._pending.pop(u, None)
                if fut.done() and not fut.cancelled():
                    fut.exception()  # mark retrieved: no "never retrieved" warning
                else:
                    fut.cancel()

    async def request(
        self,
        cmds: list[Mapping[str, Any]],
        *,
        all: bool = False,
        timeout: float | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """Runs MPREG commands (one ``rpc`` request) and returns ``r``: ``{name: value}``
        for the sink commands (every command's with ``all=True``)."""
        fields: dict[str, Any] = {"cmds": [_command(c) for c in cmds]}
        if timeout is not None:
            fields["timeout"] = float(timeout)
        if scope is not None:
            if scope not in SCOPES:
                raise ValueError(f"scope {scope!r}: expected one of {', '.join(SCOPES)}")
            fields["scope"] = scope
        if all:
            fields["all"] = True
        # The node answers 1004 at its deadline; wait a little longer for that answer.
        wait = None if timeout is None else float(timeout) + 5.0
        r = await self._request("rpc", fields, timeout=wait)
        if not isinstance(r, dict):
            raise ProtocolError(None, f"rpc reply `r` is not an object: {r!r}")
        return r

    async def call(
        self,
        fun: str,
        *args: Any,
        locs: Iterable[str] | str | None = None,
        scope: str | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Calls ``fun`` somewhere in the cluster and returns its result.

        ``locs``: resources the provider must have; ``scope``: ``network`` / ``host`` /
        ``node``; ``timeout``: seconds. Keyword arguments named ``locs``, ``scope`` or
        ``timeout`` must go through :meth:`workflow`.
        """
        cmd = {"name": fun, "fun": fun, "args": list(args), "kwargs": kwargs, "locs": _locs(locs)}
        r = await self.request([cmd], timeout=timeout, scope=scope)
        if fun in r:
            return r[fun]
        if len(r) == 1:
            return next(iter(r.values()))
        raise ProtocolError(None, f"reply to `{fun}` has no result for it: {r!r}")

    async def workflow(
        self,
        cmds: list[Mapping[str, Any]],
        *,
        all: bool = False,
        timeout: float | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """Runs a workflow: ``cmds`` are ``{"name", "fun", "args", "kwargs", "locs"}``;
        a string argument equal to another command's name (or ``"name.field"``) is its
        result. Returns the sinks' results by name (all of them with ``all=True``)."""
        return await self.request(cmds, all=all, timeout=timeout, scope=scope)

    async def publish(self, topic: str, message: Any, *, confirm: bool = False) -> int:
        """Publishes ``message`` on ``topic``; returns how many were reached as the
        gateway counts them (``nodes`` with a matching subscriber; gateways of the first
        contract said ``subscribers``). With ``confirm=True``: the subscribers that
        acknowledged (one that did not raises :class:`ExecutionFailed`)."""
        r = await self._request(
            "publish", {"topic": topic, "message": message, "confirm": bool(confirm)}
        )
        keys = ("confirmed",) if confirm else ("nodes", "subscribers")
        if isinstance(r, dict):
            for key in keys:
                if isinstance(r.get(key), int) and not isinstance(r.get(key), bool):
                    return r[key]
        raise ProtocolError(None, f"publish reply has no `{'`/`'.join(keys)}` count: {r!r}")

    def subscribe(self, *patterns: str, group: str | None = None) -> AsyncSubscription:
        """A subscription to ``patterns`` (``*`` one level, ``**`` any levels); ``group``
        shares the messages among the subscribers of a queue group. ``await`` it to
        subscribe at once, or iterate it with ``async for``."""
        if not patterns:
            raise ValueError("subscribe needs at least one pattern")
        return AsyncSubscription(self, list(patterns), group)

    async def _subscribe(self, sub: AsyncSubscription) -> None:
        """Sends the ``subscribe`` request of ``sub``."""

        def bind(r: Any) -> None:
            """Records the subscription id; runs in the reader, before any push that
            follows the reply is handled."""
            if isinstance(r, dict) and isinstance(r.get("subscription"), str):
                sub.id = r["subscription"]
                self._subscriptions[sub.id] = sub

        r = await self._request(
            "subscribe", {"patterns": sub.patterns, "group": sub.group}, on_reply=bind
        )
        if sub.id is None:
            raise ProtocolError(None, f"subscribe reply has no `subscription`: {r!r}")

    # ---- serving ----------------------------------------------------------------------

    def register(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        resources: Iterable[str] | None = None,
        visibility: str = "network",
    ) -> Any:
        """Decorator recording a function of this client; it is offered by
        :meth:`offer` / :meth:`serve`."""
        return self.registry.register(func, name=name, resources=resources, visibility=visibility)

    async def offer(self, functions: Iterable[Function] | None = None) -> list[str]:
        """Registers functions with the node now (default: this client's and the
        process-wide ``@mpreg.register`` ones not offered yet); calls then reach this
        client. Returns the names registered."""
        if functions is None:
            merged = {f.name: f for f in REGISTRY}
            merged.update({f.name: f for f in self.registry})
            functions = list(merged.values())
        new = [f for f in functions if f.name not in self._served]
        if not new:
            return []
        for f in new:
            self._served[f.name] = f
        try:
            r = await self._request(
                "register",
                {"functions": [f.wire() for f in new], "max_in_flight": self.max_in_flight},
            )
        except BaseException:
            for f in new:
                self._served.pop(f.name, None)
            raise
        names = r.get("registered") if isinstance(r, dict) else None
        return list(names) if isinstance(names, list) else [f.name for f in new]

    async def withdraw(self, *names: str) -> list[str]:
        """Unregisters functions served by this client; returns the names withdrawn."""
        r = await self._request("unregister", {"names": list(names)})
        for n in names:
            self._served.pop(n, None)
        out = r.get("unregistered") if isinstance(r, dict) else None
        return list(out) if isinstance(out, list) else list(names)

    async def serve(self, functions: Iterable[Function] | None = None) -> None:
        """Offers the functions (see :meth:`offer`) and answers calls until the
        connection closes (then raises :class:`ConnectionLost` unless closed here)."""
        await self.offer(functions)
        if not self._served:
            raise ValueError(
                "nothing to serve: register functions with @mpreg.register or client.register"
            )
        assert self._reader is not None
        await asyncio.shield(self._reader)
        if not self._closing:
            raise ConnectionLost(None, self._closed_reason or "connection closed")

    def _invoke(self, frame: dict[str, Any]) -> None:
        """Starts running one ``invoke`` frame."""
        call_id = frame.get("id")
        fun = frame.get("fun")
        t = asyncio.get_running_loop().create_task(self._run_invoke(call_id, fun, frame))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _run_invoke(self, call_id: Any, fun: Any, frame: dict[str, Any]) -> None:
        """Runs the function of an ``invoke`` and sends its ``result`` frame."""
        f = self._served.get(fun) if isinstance(fun, str) else None
        args = frame.get("args") or []
        kwargs = frame.get("kwargs") or {}
        timeout = frame.get("timeout")
        out: dict[str, Any] = {"role": "result", "id": call_id}
        try:
            if f is None:
                raise LookupError(f"`{fun}` is not served by this client")
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError("invoke frame with malformed args/kwargs")
            if f.is_async:
                coro = f.func(*args, **kwargs)
                if isinstance(timeout, (int, float)) and timeout > 0:
                    value = await asyncio.wait_for(coro, timeout)
                else:
                    value = await coro
            else:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self._workers, thread_name_prefix="mpreg-serve"
                    )
                loop = asyncio.get_running_loop()
                value = await loop.run_in_executor(
                    self._pool, functools.partial(f.func, *args, **kwargs)
                )
            out["result"] = value
            text = _dumps(out)
        except asyncio.CancelledError:
            raise
        except asyncio.TimeoutError as e:
            msg = str(e) if isinstance(e, MpregError) else f"`{fun}` timed out after {timeout} s"
            out.pop("result", None)
            text = _dumps({**out, "error": msg})
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            if "result" in out:
                msg = f"result of `{fun}` is not JSON: {e}"
            else:
                msg = f"{type(e).__name__}: {e}"
            out.pop("result", None)
            text = _dumps({**out, "error": msg})
        ws = self._ws
        if ws is None:
            return
        if len(text.encode("utf-8")) > MAX_FRAME:
            text = _dumps({"role": "result", "id": call_id,
                           "error": f"result of `{fun}` exceeds the 1 MiB frame limit"})
        try:
            await ws.send(text)
        except ConnectionClosed:
            pass

    # ---- the reader -------------------------------------------------------------------

    async def _read(self) -> None:
        """Reads frames until the connection closes: replies, pushes, invokes."""
        ws = self._ws
        reason = "connection closed"
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    log.warning("mpreg: frame from %s is not JSON, ignored", self.url)
                    continue
                if not isinstance(frame, dict):
                    log.warning("mpreg: frame from %s is not an object, ignored", self.url)
                    continue
                self._dispatch(frame)
        except ConnectionClosed as e:
            reason = f"connection to {self.url} closed: {e}"
        except asyncio.CancelledError:
            reason = "client closed"
            raise
        except Exception as e:  # noqa: BLE001 - keep the cause for the waiting callers
            reason = f"connection to {self.url} failed: {e!r}"
        finally:
            if self._closing:
                reason = "client closed"
            else:
                code = getattr(ws, "close_code", None)
                if code is not None and "closed" in reason and str(code) not in reason:
                    reason += f" (close code {code})"
            self._closed_reason = reason
            err = ConnectionLost(None, reason)
            for fut, _ in list(self._pending.values()):
                if not fut.done():
                    fut.set_exception(err)
            for sub in list(self._subscriptions.values()):
                sub.queue.put_nowait(
                    StopAsyncIteration() if self._closing else ConnectionLost(None, reason)
                )
            self._subscriptions.clear()

    def _dispatch(self, frame: dict[str, Any]) -> None:
        """Handles one frame from the server."""
        role = frame.get("role")
        if role == "message":
            sub = self._subscriptions.get(frame.get("subscription"))  # type: ignore[arg-type]
            if sub is None:
                return
            dropped = frame.get("dropped")
            sub.queue.put_nowait(
                Message(
                    topic=str(frame.get("topic", "")),
                    message=frame.get("message"),
                    dropped=dropped if isinstance(dropped, int) else 0,
                    subscription=str(frame.get("subscription")),
                )
            )
            return
        if role == "invoke":
            self._invoke(frame)
            return
        if role is not None:
            log.debug("mpreg: frame with unknown role %r ignored", role)
            return
        u = frame.get("u")
        entry = self._pending.get(u) if isinstance(u, str) else None
        if entry is None:
            if frame.get("error") is not None:
                log.warning("mpreg: error reply without a request: %s", frame.get("error"))
            return
        fut, on_reply = entry
        if fut.done():
            return
        err = frame.get("error")
        if err is not None:
            fut.set_exception(error_from_wire(err))
            return
        r = frame.get("r")
        if on_reply is not None:
            on_reply(r)
        fut.set_result(r)


async def connect(url: str | None = None, token: str | None = None, **options: Any) -> AsyncClient:
    """A connected :class:`AsyncClient` (``url`` default: ``MPREG_GATEWAY``, else
    discovery)."""
    return await AsyncClient(url, token, **options).connect()
