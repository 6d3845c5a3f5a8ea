"""URL rules: blueprints collect them, the router matches request paths against them.

Rule syntax (as the handlers are written): `/_matrix/client/v3/rooms/<room_id>/send/<event_type>/
<txn_id>`; `<name>` is one path segment, `<path:name>` the rest of the path (one segment or more),
`<any(a, b):name>` one of the listed words. Trailing slashes never matter (Matrix paths have no
slash variants, and clients differ).

Segments are matched after percent-decoding each one separately, on the raw path: an id that
contains an encoded `/` (`%2F`, possible in room version 3 event ids) stays one segment.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

__all__ = ["Blueprint", "Route", "Router", "Match"]

Handler = Callable[..., Awaitable[Any]]

_VAR = re.compile(r"^<(?:(?P<conv>path|any\((?P<words>[^)]*)\)):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>$")
# Rules are bucketed by this many leading segments when those are all literal.
_INDEX_DEPTH = 5


@dataclass(frozen=True, slots=True)
class _Segment:
    literal: str | None = None  # a fixed segment
    name: str | None = None  # a variable
    words: frozenset[str] | None = None  # any(...) choices
    rest: bool = False  # path: takes the remaining segments


@dataclass(frozen=True, slots=True)
class Route:
    rule: str
    methods: frozenset[str]
    handler: Handler
    defaults: tuple[tuple[str, str], ...]
    segments: tuple[_Segment, ...]

    @property
    def literal_prefix(self) -> tuple[str, ...]:
        prefix = []
        for seg in self.segments:
            if seg.literal is None:
                break
            prefix.append(seg.literal)
        return tuple(prefix)

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        values: dict[str, str] = dict(self.defaults)
        segs = self.segments
        for i, seg in enumerate(segs):
            if seg.rest:
                if i >= len(parts):
                    return None
                values[seg.name or ""] = "/".join(parts[i:])
                return values
            if i >= len(parts):
                return None
            part = parts[i]
            if seg.literal is not None:
                if part != seg.literal:
                    return None
            elif not part or (seg.words is not None and part not in seg.words):
                return None
            else:
                values[seg.name or ""] = part
        return values if len(parts) == len(segs) else None


def _parse_rule(rule: str) -> tuple[_Segment, ...]:
    segments = []
    for raw in _split(rule):
        m = _VAR.match(raw)
        if m is None:
            if "<" in raw or ">" in raw:
                raise ValueError(f"unsupported rule segment {raw!r} in {rule!r}")
            segments.append(_Segment(literal=raw))
        elif m.group("conv") == "path":
            segments.append(_Segment(name=m.group("name"), rest=True))
        elif m.group("words") is not None:
            words = frozenset(w.strip() for w in m.group("words").split(","))
            segments.append(_Segment(name=m.group("name"), words=words))
        else:
            segments.append(_Segment(name=m.group("name")))
    if any(s.rest for s in segments[:-1]):
        raise ValueError(f"<path:...> must be the last segment of {rule!r}")
    return tuple(segments)


def _split(path: str) -> list[str]:
    parts = path.split("/")[1:]  # paths start with "/"
    while parts and parts[-1] == "":
        parts.pop()
    return parts


class Blueprint:
    """Routes of one spec area, registered on an app later (`@bp.get(rule)` etc.)."""

    def __init__(self, name: str, import_name: str = "") -> None:
        self.name = name
        self.routes: list[Route] = []

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: Handler | None = None,
        methods: Sequence[str] = ("GET",),
        defaults: dict[str, str] | None = None,
    ) -> None:
        assert view_func is not None
        self.routes.append(
            Route(
                rule=rule,
                methods=frozenset(m.upper() for m in methods),
                handler=view_func,
                defaults=tuple((defaults or {}).items()),
                segments=_parse_rule(rule),
            )
        )

    def route(
        self, rule: str, methods: Sequence[str] = ("GET",), defaults: dict[str, str] | None = None
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.add_url_rule(rule, None, handler, methods, defaults)
            return handler

        return register

    def get(self, rule: str, defaults: dict[str, str] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, ("GET",), defaults)

    def put(self, rule: str, defaults: dict[str, str] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, ("PUT",), defaults)

    def post(self, rule: str, defaults: dict[str, str] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, ("POST",), defaults)

    def delete(self, rule: str, defaults: dict[str, str] | None = None) -> Callable[[Handler], Handler]:
        return self.route(rule, ("DELETE",), defaults)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route | None  # None: no route for this method (see allowed) or none at all
    values: dict[str, str]
    allowed: frozenset[str]  # methods the path does have, when `route` is None


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._index: dict[tuple[str, ...], list[Route]] = {}
        self._unindexed: list[Route] = []

    def add(self, routes: Sequence[Route]) -> None:
        self._routes.extend(routes)
        # More literal segments first, a rest-of-path variable last: the most specific rule wins.
        ordered = sorted(
            self._routes,
            key=lambda r: (any(s.rest for s in r.segments), -sum(s.literal is not None for s in r.segments)),
        )
        self._index = {}
        self._unindexed = []
        for route in ordered:
            prefix = route.literal_prefix
            if len(prefix) >= _INDEX_DEPTH:
                self._index.setdefault(prefix[:_INDEX_DEPTH], []).append(route)
            else:
                self._unindexed.append(route)

    def match(self, raw_path: str, method: str) -> Match:
        parts = [unquote(p) for p in _split(raw_path)]
        candidates = self._index.get(tuple(parts[:_INDEX_DEPTH]), [])
        allowed: set[str] = set()
        for routes in (candidates, self._unindexed):
            for route in routes:
                values = route.match(parts)
                if values is None:
                    continue
                if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                    return Match(route, values, route.methods)
                allowed |= route.methods
        return Match(None, {}, frozenset(allowed))
