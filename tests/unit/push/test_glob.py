"""Glob matching: appendices §Glob-style matching and the examples in push.md §Conditions."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dendrite_lite.push.glob import compile_glob, compile_word_literal


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # push.md's event_match example: `lunc?*` against content.topic
        ("lunc?*", "Lunch plans", True),
        ("lunc?*", "LUNCH", True),
        ("lunc?*", " lunch", False),
        ("lunc?*", "lunc", False),
        ("m.room.message", "m.room.message", True),
        ("m.room.message", "M.Room.Message", True),
        ("m.room.message", "m.room.message2", False),
        ("m.room.message", "xm.room.message", False),
        ("m.room.*", "m.room.member", True),
        ("m.room.*", "m.room.", True),
        ("m.room.*", "m.roomy", False),
        ("*", "", True),
        ("", "", True),
        ("", "a", False),
        ("?", "", False),
        ("?", "é", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "a-b-c", True),
        ("a*b*c", "acb", False),
        ("a*b*c", "abcb", False),
        ("a*bc", "abcbc", True),
        ("*a", "aa", True),
        ("a*a", "a", False),  # the two segments may not overlap
        ("a**b", "ab", True),
        ("a.b", "aXb", False),  # regex metacharacters are literal
        ("[ab]", "[ab]", True),
        ("[ab]", "a", False),
        ("line*end", "line\nend", True),  # * crosses newlines
    ],
)
def test_whole_value(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern)(value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # push.md's content.body example: `ex*ple`
        ("ex*ple", "An example event.", True),
        ("ex*ple", "exple", True),
        ("ex*ple", "An exciting triple-whammy", True),
        ("ex*ple", "An examples event", False),  # "ple" followed by "s": no boundary
        ("ex*ple", "Anexample", False),  # no boundary before "ex"
        ("cake", "I like cake!", True),
        ("cake", "CAKE", True),
        ("cake", "cakes", False),
        ("cake", "pancake", False),
        ("cake", "cake_shop", False),  # _ is a word character
        ("cake", "cake-shop", True),
        ("cake", "écakeé", True),  # only ASCII letters are word characters
        ("cake", "cake9", False),
        ("ca?e", "the cave", True),
        ("cake*lie", "the cake is a lie", True),
        ("cake*lie", "the cake is a lie!", True),
        ("cake*lie", "the cake is a lies", False),
        ("cake*lie", "the cake is a lie and a lies", True),
        ("*", "", True),
        ("*", "anything", True),
        ("a*", "ba", False),
        ("a*", "b a", True),
        ("*a", "ab", False),
        ("*a", "ba", True),
        ("@alice", "hi @alice", True),
        ("@alice", "hi@alice", True),  # the "@" is itself a boundary character
        ("@alice", "hi @alicex", False),
        ("alice:", "alice:x", True),
    ],
)
def test_word_bounded(pattern: str, value: str, expected: bool) -> None:
    assert compile_glob(pattern, word_boundary=True)(value) is expected


def _reference(pattern: str, value: str, word_boundary: bool) -> bool:
    """The obvious (backtracking) regex the module avoids, as an oracle on small inputs."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if word_boundary:
        edge = r"(?:^|$|(?<=[^A-Za-z0-9_])|(?=[^A-Za-z0-9_]))"
        rx = edge + body + edge
        return re.search(rx, value, re.IGNORECASE | re.DOTALL) is not None
    return re.fullmatch(body, value, re.IGNORECASE | re.DOTALL) is not None


_alphabet = st.sampled_from(list("abAB _-*?"))


@settings(max_examples=500, deadline=None)
@given(pattern=st.text(_alphabet, max_size=6), value=st.text(_alphabet, max_size=10), wb=st.booleans())
def test_agrees_with_backtracking_regex(pattern: str, value: str, wb: bool) -> None:
    assert compile_glob(pattern, word_boundary=wb)(value) is _reference(pattern, value, wb)


def test_adversarial_pattern_is_fast() -> None:
    # `*a*a*a*a*a*b` as a backtracking regex is polynomial of high degree on a long run of a's.
    body = "a" * 60_000
    matcher = compile_glob("*a*a*a*a*a*b", word_boundary=True)
    whole = compile_glob("*a*a*a*a*a*b")
    start = time.perf_counter()
    assert matcher(body) is False
    assert whole(body) is False
    assert time.perf_counter() - start < 1.0


def test_same_pattern_gives_same_matcher() -> None:
    assert compile_glob("m.room.message") is compile_glob("m.room.message")
    assert compile_glob("x") is not compile_glob("x", word_boundary=True)


def test_word_literal_treats_glob_characters_literally() -> None:
    match = compile_word_literal("Al*ce?")
    assert match("hello al*ce? how are you")
    assert not match("hello alice! how are you")
    assert not match("helloAl*ce? there")  # starts inside a word
