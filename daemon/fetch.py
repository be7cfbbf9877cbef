"""HTTP GET for the poll path: one kept-alive HTTP/1.1 connection per target, bounded in time and size.

Why not httpx here: the poll is one GET of one URL per target per second, and httpx's layers
(httpx -> httpcore -> anyio -> h11) cost more CPU than parsing the response (benchmarks/results/
poll.md). This client does only what a scrape needs — GET, keep-alive, Content-Length, chunked or
close-delimited bodies, TLS via `ssl` — and the health checks keep using httpx, where the volume is
small and the features (JSON, redirects off, pooling) are worth it.

Limits, enforced while reading (never after): the whole exchange finishes within `timeout_s`
(`asyncio.timeout`, so a server trickling one byte a second cannot stretch it), headers fit in
64 KiB, and the body stops being read — and the connection is dropped — past `max_bytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

HEADER_LIMIT = 64 * 1024
_READ = 64 * 1024


class FetchError(Exception):
    """One failed HTTP fetch; `kind` is a stable short code (refused, connect, timeout, too_large, error)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class _Stale(Exception):
    """A kept-alive connection the server had already closed: retry once on a fresh one."""


class MetricsFetcher:
    """GET one URL again and again over one persistent connection (never used concurrently)."""

    def __init__(
        self, url: str, *, ssl_context: ssl.SSLContext | None = None, user_agent: str = "charter-tui"
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls = parts.scheme == "https"
        self.ssl_context = ssl_context
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host_header = parts.netloc.rsplit("@", 1)[-1]
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: {user_agent}\r\n"
            "Accept: text/plain;version=0.0.4\r\nAccept-Encoding: identity\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def get(self, timeout_s: float, max_bytes: int) -> tuple[int, bytes]:
        """(status, body); raises FetchError with a reason a user can act on."""
        try:
            async with asyncio.timeout(timeout_s):
                reused = self._writer is not None
                try:
                    return await self._exchange(max_bytes, reused)
                except _Stale:
                    await self.close()
                    return await self._exchange(max_bytes, False)
        except FetchError:
            await self.close()
            raise
        except TimeoutError:
            await self.close()
            raise FetchError("timeout", f"no complete response within {timeout_s:g}s") from None
        except ConnectionRefusedError:
            await self.close()
            raise FetchError("refused", f"connection refused ({self.url})") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, _Stale) as exc:
            await self.close()
            raise FetchError(
                "connect" if isinstance(exc, OSError) else "error",
                f"{type(exc).__name__} from {self.url}: {exc}",
            ) from None

    async def _exchange(self, max_bytes: int, reused: bool) -> tuple[int, bytes]:
        if self._writer is None:
            ctx = None
            if self.tls:
                ctx = self.ssl_context or ssl.create_default_context()
            self._reader, self._writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=ctx,
                server_hostname=self.host if self.tls else None,
                limit=HEADER_LIMIT,
            )
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(self._request)
        try:
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            if reused and (not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial):
                raise _Stale() from None
            raise
        except asyncio.LimitOverrunError:
            raise FetchError(
                "error", f"response headers from {self.url} exceed {HEADER_LIMIT} bytes"
            ) from None
        status, headers, version = _parse_head(head)
        keep = _keep_alive(version, headers)
        encoding = headers.get("transfer-encoding", "").lower()
        if "chunked" in encoding:
            body = await _read_chunked(reader, max_bytes, self.url)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise FetchError("error", f"bad Content-Length {headers['content-length']!r}") from None
            if length > max_bytes:
                raise FetchError(
                    "too_large", f"response declares {length} bytes, over the {max_bytes}-byte cap"
                )
            body = await reader.readexactly(length)
        else:
            body = await _read_to_eof(reader, max_bytes)
            keep = False
        if not keep:
            await self.close()
        return status, body

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


def _parse_head(head: bytes) -> tuple[int, dict[str, str], str]:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise FetchError("error", f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise FetchError("error", f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(status_line[1]), headers, status_line[0]


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int, url: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            n = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise FetchError("error", f"bad chunk size line from {url}: {line[:40]!r}") from None
        if n == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, then the blank line
                pass
            return b"".join(chunks)
        size += n
        if size > max_bytes:
            raise FetchError("too_large", f"response exceeded the {max_bytes}-byte cap")
        chunks.append(await reader.readexactly(n))
        await reader.readexactly(2)


async def _read_to_eof(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await reader.read(_READ)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"response exceeded the {max_bytes}-byte cap")
        chunks.append(chunk)
