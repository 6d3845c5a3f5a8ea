"""OpenGraph from an HTML page, with the standard library's html.parser.

What a preview shows: the page's `og:*` meta tags (https://ogp.me/), with fallbacks for pages
without them, as Synapse gives: `og:title` from <title>, `og:description` from
<meta name="description">. `og:image` and `og:url` are made absolute against the page's URL.
Values are trimmed, and one longer than MAX_VALUE characters is dropped (a preview is a
summary; a page stuffing megabytes into a tag must not make our answer or cache that large).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

__all__ = ["decode_page", "parse_open_graph"]

MAX_VALUE = 2000
MAX_TAGS = 50
_ABSOLUTE = ("og:image", "og:image:url", "og:image:secure_url", "og:url")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def decode_page(body: bytes, content_type: str) -> str:
    """The page as text: the charset of the Content-Type header, else of a <meta> tag near the
    start, else UTF-8 (undecodable bytes replaced)."""
    charset = _charset_param(content_type)
    if charset is None:
        m = _META_CHARSET.search(body[:4096])
        charset = m[1].decode("ascii") if m else None
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _charset_param(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip("\"'")
    return None


def parse_open_graph(html: str, page_url: str) -> dict[str, str]:
    parser = _OpenGraphParser()
    parser.feed(html)
    parser.close()
    og = dict(parser.og)
    if "og:title" not in og and parser.title.strip():
        og["og:title"] = parser.title
    if "og:description" not in og and parser.description is not None:
        og["og:description"] = parser.description
    out: dict[str, str] = {}
    for key, value in og.items():
        value = " ".join(value.split())
        if not value or len(value) > MAX_VALUE:
            continue
        if key in _ABSOLUTE:
            value = urljoin(page_url, value)
            if not value.startswith(("http://", "https://")):
                continue  # javascript:, data: and the like are no preview
        out[key] = value
    return out


class _OpenGraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.og: dict[str, str] = {}
        self.title = ""
        self.description: str | None = None
        self._in_title = False
        self._title_done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self._title_done:
            self._in_title = True
        elif tag == "meta":
            self._meta(dict(attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "meta":
            self._meta(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._in_title:
            self._in_title, self._title_done = False, True

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) <= MAX_VALUE:
            self.title += data

    def _meta(self, attrs: dict[str, str | None]) -> None:
        content = attrs.get("content")
        if content is None:
            return
        # OpenGraph says `property`; many pages write `name`, and browsers' previewers accept it.
        key = (attrs.get("property") or attrs.get("name") or "").strip().lower()
        if key.startswith("og:"):
            # The first of a repeated tag (og:image arrays): the one the page put first.
            if key not in self.og and len(self.og) < MAX_TAGS:
                self.og[key] = content
        elif key == "description" and self.description is None:
            self.description = content
