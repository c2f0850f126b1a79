"""The bearer token, against a tiny in-process gateway on 127.0.0.1 that demands one (a
real node asks for it only off loopback, which the tests never bind)."""

from __future__ import annotations

import asyncio
import http
import json

import pytest

import mpreg

TOKEN = "t0ken-for-tests"

try:  # websockets >= 13
    from websockets.asyncio.server import serve as ws_serve

    NEW_API = True
except ImportError:  # websockets 12
    from websockets.server import serve as ws_serve  # type: ignore[no-redef]

    NEW_API = False


async def handler(ws, *_):
    """Answers `rpc` frames by echoing the first command's first argument."""
    async for raw in ws:
        req = json.loads(raw)
        cmd = req["cmds"][0]
        await ws.send(json.dumps({"r": {cmd["name"]: cmd["args"][0]}, "error": None, "u": req["u"]}))


def authorized(headers) -> bool:
    return headers.get("Authorization") == f"Bearer {TOKEN}"


if NEW_API:

    def check(connection, request):
        if not authorized(request.headers):
            return connection.respond(http.HTTPStatus.UNAUTHORIZED, "token required\n")
        return None

else:

    async def check(path, headers):  # type: ignore[misc]
        if not authorized(headers):
            return http.HTTPStatus.UNAUTHORIZED, [], b"token required\n"
        return None


async def run(scenario):
    async with ws_serve(handler, "127.0.0.1", 0, process_request=check) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        await scenario(f"ws://127.0.0.1:{port}/")


def test_token_argument_env_and_file(monkeypatch, tmp_path):
    monkeypatch.delenv("MPREG_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("MPREG_HTTP_TOKEN_FILE", raising=False)

    async def scenario(url):
        async with mpreg.AsyncClient(url, token=TOKEN) as c:
            assert await c.call("echo", "by argument") == "by argument"
        monkeypatch.setenv("MPREG_HTTP_TOKEN", TOKEN)
        async with mpreg.AsyncClient(url) as c:
            assert await c.call("echo", "by env") == "by env"
        monkeypatch.delenv("MPREG_HTTP_TOKEN")
        f = tmp_path / "token"
        f.write_text(TOKEN + "\n")
        monkeypatch.setenv("MPREG_HTTP_TOKEN_FILE", str(f))
        async with mpreg.AsyncClient(url) as c:
            assert await c.call("echo", "by file") == "by file"

    asyncio.run(run(scenario))


def test_missing_or_wrong_token_is_unauthorized(monkeypatch):
    monkeypatch.delenv("MPREG_HTTP_TOKEN", raising=False)
    monkeypatch.delenv("MPREG_HTTP_TOKEN_FILE", raising=False)

    async def scenario(url):
        with pytest.raises(mpreg.Unauthorized, match="needs a token"):
            await mpreg.connect(url)
        with pytest.raises(mpreg.Unauthorized, match="wrong token"):
            await mpreg.connect(url, token="nope")

    asyncio.run(run(scenario))
