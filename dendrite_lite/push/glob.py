"""Glob matching for push rules (appendices §Glob-style matching, push.md §Conditions).

`*` matches zero or more characters and `?` exactly one; every other character is literal and the
match is case-insensitive. Two modes:
- whole value (event_match on any key but `content.body`);
- word-bounded substring (`content.body` and content rules): some substring that starts and ends
  at a word boundary, a boundary being the start/end of the value or any character outside
  [A-Za-z0-9_] (ASCII only, as the spec says, so "é" is a boundary). We read "starts at a
  boundary" as "does not start between two word characters" (see _BOUNDARY).

Why not one big regex: patterns come from users and `*a*a*a*b` as `.*a.*a.*a.*b` backtracks
polynomially on a long body. Here a pattern is split on `*` into fixed-length segments, each a
regex without quantifiers, and the segments are placed greedily left to right, which is correct
for globs (placing a segment earlier never removes a solution) and costs O(len(value) *
len(pattern)) at worst.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

__all__ = ["Matcher", "compile_glob", "compile_word_literal"]

Matcher = Callable[[str], bool]

_FLAGS = re.IGNORECASE | re.DOTALL
# A boundary position is one not strictly inside a word: the substring may neither start nor end
# between two word characters. So "@alice" is found in "hi@alice" (the "@" is itself a boundary
# character), as Synapse's `(?:^|\b|\W)` wrapper also finds it, while "cake" is not found in
# "pancake".
_BOUNDARY = r"(?!(?<=[A-Za-z0-9_])[A-Za-z0-9_])"
_WORD_START = _BOUNDARY
_WORD_END = _BOUNDARY


def _segment_regex(segment: str) -> str:
    # Each pattern character matches exactly one value character (Python's IGNORECASE folds one
    # character to one character), which the whole-value mode relies on for the last segment.
    return "".join("." if ch == "?" else re.escape(ch) for ch in segment)


@lru_cache(maxsize=4096)
def compile_glob(pattern: str, *, word_boundary: bool = False) -> Matcher:
    """A predicate telling whether a string value matches `pattern`.

    Cached: the same pattern in the rules of many users yields the same matcher object, which
    the evaluator uses as a memo key when it checks one event for a whole room.
    """
    parts = pattern.split("*")
    if len(parts) == 1:
        return _fixed(_segment_regex(pattern), word_boundary)
    segments = [_segment_regex(p) for p in parts]
    if word_boundary:
        return _bounded_search(segments)
    return _whole_value(segments, [len(p) for p in parts])


@lru_cache(maxsize=1024)
def compile_word_literal(text: str) -> Matcher:
    """Word-bounded, case-insensitive search for `text` taken literally (contains_display_name)."""
    return _fixed(re.escape(text), True)


def _fixed(regex: str, word_boundary: bool) -> Matcher:
    if word_boundary:
        searcher = re.compile(_WORD_START + regex + _WORD_END, _FLAGS).search
        return lambda value: searcher(value) is not None
    fullmatcher = re.compile(regex, _FLAGS).fullmatch
    return lambda value: fullmatcher(value) is not None


_Finder = Callable[..., "re.Match[str] | None"]


def _place(value: str, first: _Finder | None, middles: list[_Finder]) -> int | None:
    """Where the greedy placement of the leading segments ends, or None if one does not fit.

    The earliest place for each segment is the best one: a later place only shrinks what the
    remaining segments can use.
    """
    pos = 0
    if first is not None:
        m = first(value)
        if m is None:
            return None
        pos = m.end()
    for search in middles:
        m = search(value, pos)
        if m is None:
            return None
        pos = m.end()
    return pos


def _whole_value(segments: list[str], lengths: list[int]) -> Matcher:
    first = re.compile(segments[0], _FLAGS).match if segments[0] else None
    middles = [re.compile(s, _FLAGS).search for s in segments[1:-1] if s]
    last = re.compile(segments[-1], _FLAGS).fullmatch if segments[-1] else None
    last_len = lengths[-1]

    def matches(value: str) -> bool:
        pos = _place(value, first, middles)
        if pos is None:
            return False
        if last is None:
            return True
        start = len(value) - last_len
        return start >= pos and last(value, start) is not None

    return matches


def _bounded_search(segments: list[str]) -> Matcher:
    # An empty first segment starts at 0 and an empty last one ends at len(value): both are
    # boundaries, so they need no check.
    first = re.compile(_WORD_START + segments[0], _FLAGS).search if segments[0] else None
    middles = [re.compile(s, _FLAGS).search for s in segments[1:-1] if s]
    last = re.compile(segments[-1] + _WORD_END, _FLAGS).search if segments[-1] else None

    def matches(value: str) -> bool:
        pos = _place(value, first, middles)
        return pos is not None and (last is None or last(value, pos) is not None)

    return matches
