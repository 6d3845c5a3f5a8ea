"""Can two namespace regexes match the same id? Decided on their regular languages (interegular,
the regex intersection checker Lark uses for colliding terminals), with an example id.

A namespace regex matches an id from its start and not necessarily to its end (Python
`re.match`, as Synapse's synapse/appservice matches), so `@irc_` claims `@irc_bob:example.org`.
interegular decides whole-string matches and has no anchors, so each regex is rewritten to the
whole-string regex of the same ids first (`whole_match`): per top-level alternative, a leading
`^` goes (re.match anchors there anyway), a trailing `$` (or `\\Z`) goes and anchors that
alternative at the end, and an alternative without one gets `.*` after it (any rest of the id).
(Python's `$` also matches before a final newline, which no id has.)

What interegular cannot handle (back-references, lookarounds, anchors inside groups, some
escapes) raises `Undecided`; the caller falls back to weaker checks, never to refusing a file.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Overlap", "Undecided", "sample_ids", "shared_id", "whole_match"]

# Flags written at the very start of a regex, e.g. "(?i)": kept at the front when rewriting.
_GLOBAL_FLAGS_RE = re.compile(r"\(\?[aiLmsux]+\)")
# The characters an example id is made of where a regex allows several, most readable first.
_FILLERS = "x0a_-.z9XQ"


class Undecided(Exception):
    """A regex uses a feature interegular cannot put into an automaton; the message says which."""


@dataclass(frozen=True, slots=True)
class Overlap:
    """The regexes share ids; `example` is one (None when no stand-in made a checkable one)."""

    example: str | None


def whole_match(regex: str) -> str:
    """The regex matching as a whole exactly the strings `regex` matches from their start."""
    flags = ""
    head = _GLOBAL_FLAGS_RE.match(regex)
    if head is not None:
        flags, regex = head.group(0), regex[head.end():]
    out = []
    for alternative in _top_level_alternatives(regex):
        alternative = alternative.removeprefix("^")
        if alternative.endswith("\\Z") and _escaped_at(alternative, len(alternative) - 1):
            out.append(f"(?:{alternative[:-2]})")
        elif alternative.endswith("$") and not _escaped_at(alternative, len(alternative) - 1):
            out.append(f"(?:{alternative[:-1]})")
        else:
            out.append(f"(?:{alternative}).*")
    return flags + "|".join(out)


def _escaped_at(text: str, index: int) -> bool:
    """Whether text[index] follows an odd number of backslashes: an escaped `$`, or the `Z` of a
    real `\\Z`."""
    slashes = 0
    i = index - 1
    while i >= 0 and text[i] == "\\":
        slashes += 1
        i -= 1
    return slashes % 2 == 1


def _top_level_alternatives(regex: str) -> list[str]:
    """`regex` split at the `|` outside groups and character classes."""
    parts, start, depth, i = [], 0, 0, 0
    in_class = False
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
        elif c == "[":
            in_class = True
            # A ']' first in the class (after an optional '^') is a literal.
            j = i + 1 + (regex[i + 1 : i + 2] == "^")
            if regex[j : j + 1] == "]":
                i = j
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(regex[start:i])
            start = i + 1
        i += 1
    parts.append(regex[start:])
    return parts


def shared_id(a: str, b: str) -> Overlap | None:
    """An Overlap when some string is matched (re.match) by both regexes, None when none is.
    Raises Undecided when interegular cannot handle one of them."""
    from interegular import InvalidSyntax, REFlags, Unsupported, parse_pattern
    from interegular.fsm import Alphabet

    patterns = []
    for regex in (a, b):
        try:
            pattern = parse_pattern(whole_match(regex))
        except (Unsupported, InvalidSyntax) as e:
            raise Undecided(f"{regex!r}: {e}") from None
        if pattern.prefix_postfix != (0, 0):
            raise Undecided(f"{regex!r}: lookahead or lookbehind")
        patterns.append(pattern)
    try:
        alphabet = Alphabet.union(*(p.get_alphabet(REFlags(0)) for p in patterns))[0]
        first, second = (p.to_fsm(alphabet, (0, 0)) for p in patterns)
        both = first & second
    except Unsupported as e:
        raise Undecided(str(e)) from None
    if both.empty():
        return None
    example = _shortest(both)
    if example is not None and all(re.compile(r).match(example) for r in (a, b)):
        return Overlap(example)
    return Overlap(None)  # not expected: the rewriting and the automaton disagree with re


def _shortest(fsm: Any) -> str | None:
    """A shortest string the automaton accepts, made of the most readable characters: a
    breadth-first search over its states (interegular's own `strings()` enumerates strings, so
    it takes time exponential in an id's length). A transition on "any other character"
    (interegular's anything_else) takes a filler no regex names, which both regexes treat alike."""
    from interegular.fsm import anything_else

    alphabet = fsm.alphabet  # the intersection's own, renumbered
    explicit = {s for s in alphabet if s is not anything_else}
    other = next((c for c in _FILLERS if c not in explicit), "\x7f")
    chars = {}
    for transition, symbols in alphabet.by_transition.items():
        concrete = sorted(s for s in symbols if s is not anything_else)
        chars[transition] = _pick(concrete) if concrete else other
    parent: dict[Any, tuple[Any, str] | None] = {fsm.initial: None}
    queue = deque([fsm.initial])
    while queue:
        state = queue.popleft()
        if state in fsm.finals:
            out = []
            while (step := parent[state]) is not None:
                state, char = step
                out.append(char)
            return "".join(reversed(out))
        moves = [(chars[t], target) for t, target in fsm.map.get(state, {}).items()]
        for char, target in sorted(moves, key=lambda m: _rank(m[0])):
            if target not in parent:
                parent[target] = (state, char)
                queue.append(target)
    return None


def _rank(char: str) -> tuple[int, str]:
    return (_FILLERS.index(char), "") if char in _FILLERS else (len(_FILLERS), char)


def sample_ids(regex: str, server_name: str) -> list[str]:
    """Ids `regex` probably matches, for the fallback check of a pair interegular cannot
    decide: its shortest id when interegular handles it alone, and ids made of its literal
    start with a few endings."""
    from interegular import InvalidSyntax, Unsupported, parse_pattern

    out = []
    try:
        shortest = _shortest(parse_pattern(whole_match(regex)).to_fsm())
    except (Unsupported, InvalidSyntax):
        shortest = None
    if shortest is not None:
        out.append(shortest)
    start = _literal_start(regex)
    for end in ("", "x", "0", "_x", ":" + server_name, "x:" + server_name, "0:" + server_name):
        out.append(start + end)
    return out


def _literal_start(regex: str) -> str:
    """The characters every id the regex matches starts with, as far as plain reading tells:
    `@irc_(.*)` -> "@irc_", `@a\\.b+` -> "@a.b"."""
    head = _GLOBAL_FLAGS_RE.match(regex)
    i = head.end() if head is not None else 0
    if regex[i : i + 1] == "^":
        i += 1
    out: list[str] = []
    while i < len(regex):
        c = regex[i]
        if c == "\\" and i + 1 < len(regex) and not regex[i + 1].isalnum():
            out.append(regex[i + 1])
            i += 2
        elif c in ".^$*+?{}[]\\|()":
            if c in "*?{" and out:
                out.pop()  # the character before is optional
            break
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _pick(symbols: list[str]) -> str:
    """A readable one of the characters a step allows: a filler when allowed, else the first."""
    for c in _FILLERS:
        if c in symbols:
            return c
    return symbols[0]
