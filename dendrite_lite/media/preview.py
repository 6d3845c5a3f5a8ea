"""URL previews (GET /_matrix/client/v1/media/preview_url): a page's OpenGraph summary.

`UrlPreviews.preview(url, user_id)` answers the JSON object of the spec:
- from the cache (storage/url_previews.py) while the URL's answer is younger than CACHE_MS;
- else by fetching the page once for everyone asking at that moment (`SingleFlight`):
  through `GuardedTransport` (preview_guard.py: public addresses only, checked on the address
  connected to), at most `media.url_preview_max_bytes` of body, FETCH_TIMEOUT_S for the whole
  fetch, redirects followed here (MAX_REDIRECTS, http and https only, each hop through the
  guard again). httpx's own redirect following reads every redirect body whole, with no cap;
- an HTML page gives its OpenGraph tags and title (preview_html.py); an image is the preview's
  image itself; anything else an empty object, as Synapse answers;
- `og:image` is fetched (through the guard, with the same limits) and stored as our media when
  a `store_image` is given, and the answer names its mxc:// URI with `og:image:type` and
  `matrix:image:size`, as the spec asks. NOTSPEC: without one the page's http(s) URL is left as
  the page gave it. An image that cannot be fetched leaves no og:image in the answer: a client
  would otherwise fetch it itself, from wherever the page pointed.
Errors: a refused address 403 M_FORBIDDEN; a page that cannot be fetched, answers an error
status, or is too large 502 M_UNKNOWN (Synapse's status); none of them is cached.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from dendrite_lite.config import MediaConfig
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.media.names import new_media_id
from dendrite_lite.media.preview_guard import (
    AddressPolicy,
    AddressRefused,
    DnsResolver,
    GuardedTransport,
    HostResolver,
)
from dendrite_lite.media.preview_html import decode_page, parse_open_graph
from dendrite_lite.media.repository import MediaRepository, MediaRow, now_ms
from dendrite_lite.media.single_flight import SingleFlight
from dendrite_lite.outbound_http import Answer, HttpError, fetch, new_client
from dendrite_lite.storage import Storage
from dendrite_lite.storage import url_previews as table

__all__ = ["StoreImage", "UrlPreviews", "repository_image_store"]

log = logging.getLogger(__name__)

CACHE_MS = 60 * 60 * 1000  # Synapse's: a page's summary rarely changes within the hour
FETCH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Some sites give OpenGraph tags only to crawlers they recognise by a "bot" user agent.
_HEADERS = {"User-Agent": "dendrite-lite (bot; URL preview)", "Accept": "text/html, image/*;q=0.9, */*;q=0.5"}

# (image bytes, content type, the user asking) -> the mxc:// URI it was stored under.
StoreImage = Callable[[bytes, str, str], Awaitable[str]]


class UrlPreviews:
    def __init__(
        self,
        storage: Storage,
        config: MediaConfig,
        *,
        store_image: StoreImage | None = None,
        resolver: HostResolver | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self._storage = storage
        self._max_bytes = config.url_preview_max_bytes
        self._store_image = store_image
        if resolver is None and config.url_preview_dns_server:
            resolver = DnsResolver(config.url_preview_dns_server)
        policy = AddressPolicy(config.url_preview_ip_allowlist)
        self._client = new_client(GuardedTransport(policy, resolver))
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._flights: SingleFlight[str, str] = SingleFlight()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def preview(self, url: str, user_id: str) -> str:
        """The JSON text of the preview of `url`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise MatrixError(Errcode.INVALID_PARAM, "url must be an http or https URL")
        now = self._clock_ms()
        cached = await self._storage.db.read(lambda c: table.select_url_preview(c, url, now))
        if cached is not None:
            return cached
        return await self._flights.run(url, lambda: self._build(url, user_id))

    async def _build(self, url: str, user_id: str) -> str:
        final_url, answer = await self._get(url)
        content_type = answer.headers.get("content-type", "")
        media_type = content_type.split(";")[0].strip().lower()
        og: dict[str, Any] = {}
        if media_type in _HTML_TYPES:
            og = parse_open_graph(decode_page(bytes(answer.body), content_type), final_url)
            await self._attach_image(og, user_id)
        elif media_type.startswith("image/") and self._store_image is not None:
            og = await self._image_og(bytes(answer.body), media_type, user_id)
        og_json = json.dumps(og, ensure_ascii=False, separators=(",", ":"))
        now = self._clock_ms()
        await self._storage.db.write(
            lambda c: table.upsert_url_preview(c, url, og_json, now, now + CACHE_MS)
        )
        return og_json

    async def _get(self, url: str) -> tuple[str, Answer]:
        """The final URL and its answer (2xx), redirects followed."""
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_S):
                for _ in range(MAX_REDIRECTS + 1):
                    answer = await fetch(
                        self._client, "GET", url, max_body_bytes=self._max_bytes,
                        timeout_s=FETCH_TIMEOUT_S, connect_timeout_s=CONNECT_TIMEOUT_S,
                        headers=_HEADERS,
                    )
                    location = answer.headers.get("location")
                    if answer.status not in _REDIRECTS or not location:
                        break
                    url = urljoin(url, location)
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise HttpError(f"redirected to a URL that is not http(s): {url}")
                else:
                    raise HttpError(f"more than {MAX_REDIRECTS} redirects")
        except AddressRefused as e:
            raise MatrixError(Errcode.FORBIDDEN, f"Cannot preview {url}: {e}", status=403) from None
        except TimeoutError:
            raise _bad_gateway(url, f"no complete answer within {FETCH_TIMEOUT_S:g} s") from None
        except HttpError as e:
            raise _bad_gateway(url, str(e)) from None
        if not 200 <= answer.status < 300:
            raise _bad_gateway(url, f"it answered HTTP {answer.status}")
        return url, answer

    async def _attach_image(self, og: dict[str, Any], user_id: str) -> None:
        image_url = og.get("og:image")
        if image_url is None or self._store_image is None:
            return
        try:
            _, answer = await self._get(image_url)
        except MatrixError as e:
            log.info("preview image %s not fetched: %s", image_url, e.error)
            answer = None
        media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower() if answer else ""
        if answer is None or not media_type.startswith("image/"):
            for key in [k for k in og if k.startswith("og:image")]:
                del og[key]
            return
        og.update(await self._image_og(bytes(answer.body), media_type, user_id, page=og))

    async def _image_og(
        self, body: bytes, media_type: str, user_id: str, page: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        assert self._store_image is not None
        mxc = await self._store_image(body, media_type, user_id)
        og: dict[str, Any] = {"og:image": mxc, "og:image:type": media_type, "matrix:image:size": len(body)}
        size = await asyncio.to_thread(_image_size, body)
        if size is not None:
            og["og:image:width"], og["og:image:height"] = size
        elif page is not None:  # the page's own claim is all there is
            for key in ("og:image:width", "og:image:height"):
                if key in page:
                    og[key] = page[key]
        return og


def _image_size(body: bytes) -> tuple[int, int] | None:
    """Width and height from the image's header (Pillow decodes no pixels for this)."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _bad_gateway(url: str, why: str) -> MatrixError:
    return MatrixError(Errcode.UNKNOWN, f"Cannot preview {url}: {why}", status=502)



def repository_image_store(repo: MediaRepository, server_name: str) -> StoreImage:
    """A `StoreImage` keeping preview images as our own media (no uploader: a preview image
    counts against nobody's quota, and is authenticated-only like any new media)."""

    async def store(body: bytes, content_type: str, user_id: str) -> str:
        media = MediaRow(
            server_name=server_name, media_id=new_media_id(), sha256=None, size=None,
            content_type=content_type, upload_name=None, user_id=None, created_ts=now_ms(),
            authenticated=True,
        )
        row = await repo.store(media, _once(body), max_bytes=len(body))
        return f"mxc://{row.server_name}/{row.media_id}"

    return store


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body
