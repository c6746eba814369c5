"""The upstream calls that go through a proxy the environment names (``HTTPS_PROXY``,
``NO_PROXY``...): aiohttp, which speaks to proxies and tunnels through them with
CONNECT. Direct calls use the leaner ``http1.Client``; a tunnel is not worth
writing for the rare deployment behind a proxy.

The same shape as ``http1``'s client and answers, and the same failures:
aiohttp's errors become ``http1.ConnectFailed``, ``ConnectionResetError`` or
``TimeoutError``, so ``openai_http.Upstream`` maps both alike.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from smmf_flow.models.backends.http1 import KEEPALIVE_S, ConnectFailed, failure_reason

if TYPE_CHECKING:
    import aiohttp


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...)."""
    split = urlsplit(url)
    proxies = urllib.request.getproxies()
    if not proxies or urllib.request.proxy_bypass(split.hostname or ""):
        return None
    return proxies.get(split.scheme)


class ProxiedClient:
    """Requests to ``base_url`` through ``proxy``, each carrying ``headers``."""

    def __init__(
        self, base_url: str, headers: Mapping[str, str], timeout_s: float, proxy: str
    ) -> None:
        import aiohttp

        split = urlsplit(base_url)
        self._base = f"{split.scheme}://{split.netloc}{split.path.rstrip('/')}"
        self._query = f"?{split.query}" if split.query else ""  # e.g. Azure's api-version
        self._proxy = proxy
        self._session = aiohttp.ClientSession(
            # no limit: the pool's slots bound the calls
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S),
            timeout=aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),  # one tenant's cookies are no other's
            headers=headers,
        )

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ProxiedResponse:
        import aiohttp

        url = self._base + path + self._query
        try:
            try:
                response = await self._session.request(
                    method, url, data=body, headers=headers, proxy=self._proxy
                )
            except aiohttp.ServerDisconnectedError:  # a kept-alive connection, closed
                response = await self._session.request(
                    method, url, data=body, headers=headers, proxy=self._proxy
                )
        except aiohttp.ClientError as exc:
            raise _translated(exc) from exc
        return ProxiedResponse(response)

    async def aclose(self) -> None:
        await self._session.close()


class ProxiedResponse:
    """An answer through the proxy, read like ``http1.Response``."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = {
            name.lower(): value for name, value in reversed(list(response.headers.items()))
        }

    async def read(self) -> bytes:
        import aiohttp

        try:
            return await self._response.read()
        except aiohttp.ClientError as exc:
            raise _translated(exc) from exc
        finally:
            self.close()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for data in self._response.content.iter_any():
                yield data
        except aiohttp.ClientError as exc:
            raise _translated(exc) from exc

    def close(self, *, linger: bool = False) -> None:
        """``linger`` is ``http1``'s; here the connection is reused only if the body
        was read to its end (aiohttp's rule)."""
        self._response.release()


def _translated(exc: aiohttp.ClientError) -> OSError:
    """aiohttp's error as the one ``http1`` raises for the same failure."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectFailed(failure_reason(exc.os_error))
    if isinstance(exc, aiohttp.ClientResponseError):  # the proxy refused the tunnel
        return ConnectFailed(f"the proxy answered HTTP {exc.status}")
    if isinstance(exc, TimeoutError):
        return exc
    return ConnectionResetError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


__all__ = ["ProxiedClient", "ProxiedResponse", "env_proxy"]
