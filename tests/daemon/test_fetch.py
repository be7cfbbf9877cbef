"""The poll path's HTTP client against raw asyncio servers that send exactly the bytes scripted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from daemon.fetch import FetchError, MetricsFetcher

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], "asyncio.Future[None] | object"]


@asynccontextmanager
async def raw_server(handler) -> AsyncIterator[tuple[str, dict[str, int]]]:
    stats = {"connections": 0, "requests": 0}

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats["connections"] += 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                stats["requests"] += 1
                keep = await handler(reader, writer, stats["requests"])
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/metrics", stats
    finally:
        server.close()


async def test_keep_alive_reuses_one_connection() -> None:
    async def h(r, w, n):
        body = f"m {n}\n".encode()
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    async with raw_server(h) as (url, stats):
        f = MetricsFetcher(url)
        assert [await f.get(2, 1000) for _ in range(3)] == [(200, b"m 1\n"), (200, b"m 2\n"), (200, b"m 3\n")]
        await f.close()
    assert stats["connections"] == 1


async def test_chunked_body_with_trailers() -> None:
    async def h(r, w, n):
        w.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;ext=1\r\nm 1\n\r\n5\r\nn 22\n\r\n0\r\nX-Trailer: y\r\n\r\n"
        )
        return True

    async with raw_server(h) as (url, _):
        f = MetricsFetcher(url)
        assert await f.get(2, 1000) == (200, b"m 1\nn 22\n")
        assert await f.get(2, 1000) == (200, b"m 1\nn 22\n")  # connection still in sync
        await f.close()


async def test_server_closing_an_idle_kept_alive_connection_is_retried_once() -> None:
    async def h(r, w, n):
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nm 1\n")
        return False  # closes without saying so: the next request hits a dead connection

    async with raw_server(h) as (url, stats):
        f = MetricsFetcher(url)
        assert await f.get(2, 1000) == (200, b"m 1\n")
        await asyncio.sleep(0.05)
        assert await f.get(2, 1000) == (200, b"m 1\n")
        await f.close()
    assert stats["connections"] == 2


async def test_http10_close_delimited_body_and_cap() -> None:
    async def h(r, w, n):
        w.write(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 5000)
        return False

    async with raw_server(h) as (url, _):
        f = MetricsFetcher(url)
        assert await f.get(2, 10000) == (200, b"x" * 5000)
        with pytest.raises(FetchError, match="exceeded the 1000-byte cap") as err:
            await f.get(2, 1000)
        assert err.value.kind == "too_large"


async def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    async def h(r, w, n):
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n")
        return True

    async with raw_server(h) as (url, _):
        with pytest.raises(FetchError, match="declares 99999999 bytes") as err:
            await MetricsFetcher(url).get(2, 1000)
        assert err.value.kind == "too_large"


async def test_trickling_server_hits_the_overall_deadline() -> None:
    async def h(r, w, n):
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            w.write(b"x")
            await w.drain()
            await asyncio.sleep(0.05)  # each read is quick; the whole is not
        return True

    async with raw_server(h) as (url, _):
        with pytest.raises(FetchError, match="within 0.5s") as err:
            await MetricsFetcher(url).get(0.5, 1000)
        assert err.value.kind == "timeout"


@pytest.mark.parametrize(
    "head",
    [b"SSH-2.0-OpenSSH_9.6\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno-colon-here\r\n\r\n"],
)
async def test_non_http_answers_are_errors(head: bytes) -> None:
    async def h(r, w, n):
        w.write(head)
        return False

    async with raw_server(h) as (url, _):
        with pytest.raises(FetchError) as err:
            await MetricsFetcher(url).get(2, 1000)
        assert err.value.kind == "error"


async def test_connection_closed_mid_body_is_an_error() -> None:
    async def h(r, w, n):
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        return False

    async with raw_server(h) as (url, _):
        with pytest.raises(FetchError, match="IncompleteReadError"):
            await MetricsFetcher(url).get(2, 1000)


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        MetricsFetcher("ftp://x/metrics")
