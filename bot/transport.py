"""Telegram's HTTP transport on aiohttp, the bot's default (httpx stays available by a setting).

PTB's own transport is httpx; under load it costs several times the CPU of aiohttp per request
(DESIGN §7, issue 13's measures), and the bot already runs aiohttp for its web server. This is a
`BaseRequest` like PTB's `HTTPXRequest`: the same timeouts (a pool timeout means the request was
not sent, so it is safe to retry), the same errors (`TimedOut`, `NetworkError`), HTTP proxies.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

POOL_TIMEOUT_MESSAGE = (
    "Pool timeout: All connections in the connection pool are occupied. Request was *not* sent "
    "to Telegram. Consider adjusting the connection pool size or the pool timeout."
)


class AiohttpRequest(BaseRequest):
    def __init__(
        self,
        connection_pool_size: int = 256,
        read_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        proxy: str | None = None,
    ) -> None:
        if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
            # aiohttp speaks to HTTP proxies only; SOCKS needs PTB's httpx transport.
            raise ValueError("the aiohttp transport supports http:// and https:// proxies only")
        if connection_pool_size < 1:
            raise ValueError("connection_pool_size must be at least 1")
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._proxy = proxy
        self._session: aiohttp.ClientSession | None = None
        # The pool's slots, counted here rather than in aiohttp's connector, so that waiting for
        # one is told apart from connecting (the request was not sent). Made again in
        # `initialize`: a semaphore belongs to the loop it first waits in.
        self._slots = asyncio.Semaphore(connection_pool_size)
        # HTTPS_PROXY / NO_PROXY, read once: aiohttp's `trust_env` reads them (and ~/.netrc) in
        # a thread at every request, which costs more CPU than the request itself.
        self._environment_proxies: dict[str, str] = {}
        self._proxy_of_host: dict[tuple[str, str], str | None] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # Created inside the running loop, as aiohttp requires.
            self._slots = asyncio.Semaphore(self._pool_size)
            self._environment_proxies = urllib.request.getproxies_environment()
            self._proxy_of_host.clear()
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        # `write_timeout` is accepted and not enforced: aiohttp has no write timeout, and a
        # stalled upload is cut by the kernel's TCP timeouts.
        try:
            async with asyncio.timeout(pool):
                await self._slots.acquire()
        except TimeoutError as error:
            raise TimedOut(POOL_TIMEOUT_MESSAGE) from error
        try:
            return await self._send(session, url, method, request_data, files, read, connect)
        finally:
            self._slots.release()

    def _proxy_for(self, url: str) -> str | None:
        if self._proxy is not None:
            return self._proxy
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        if key not in self._proxy_of_host:
            proxy = self._environment_proxies.get(parts.scheme)
            bypass = proxy is not None and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                key[1], self._environment_proxies
            )
            self._proxy_of_host[key] = None if bypass else proxy
        return self._proxy_of_host[key]

    async def _send(
        self,
        session: aiohttp.ClientSession,
        url: str,
        method: str,
        request_data: RequestData | None,
        files: dict[str, Any] | None,
        read: float | None,
        connect: float | None,
    ) -> tuple[int, bytes]:
        # Per operation, as httpx does: connecting (TLS included) and each read of the answer.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=read
        )
        try:
            async with session.request(
                method,
                url,
                data=_body(request_data, files),
                timeout=timeout,
                proxy=self._proxy_for(url),
                allow_redirects=False,
            ) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error


def _body(request_data: RequestData | None, files: dict[str, Any] | None) -> Any:
    """Form fields as PTB encodes them (JSON for nested values); multipart when files go too."""
    if request_data is None:
        return None
    fields = request_data.json_parameters
    if not files:
        return fields or None
    # Names as they are (httpx does the same): quoted, "élève.pdf" would reach Telegram as
    # "%C3%A9l%C3%A8ve.pdf".
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in files.items():
        if not isinstance(content, bytes):
            # A file handle: aiohttp would close it once sent, and a retry (after a 429) sends
            # the same one again. Read from its start each time, as httpx does.
            if content.seekable():
                content.seek(0)
            content = content.read()
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
