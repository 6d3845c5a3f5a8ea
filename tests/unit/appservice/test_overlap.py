"""Namespace regexes compared on their languages (appservice/overlap.py): the regexes bridges
write, with re.match's semantics (anchored at the start only), and an example id."""

from __future__ import annotations

import re

import pytest

from dendrite_lite.appservice.overlap import (
    Overlap,
    Undecided,
    sample_ids,
    shared_id,
    whole_match,
)

ORG = r":example\.org"


@pytest.mark.parametrize(
    ("a", "b", "example"),
    [
        (rf"@whatsapp_.*{ORG}", rf"@whatsapp_.+{ORG}", "@whatsapp_x:example.org"),
        (rf"@telegram_.+{ORG}", rf"@telegram_[0-9]+{ORG}", "@telegram_0:example.org"),
        (r"#irc_.*", r"#irc_freenode_.*", "#irc_freenode_"),
        (r"#irc_.*", r"#irc_.*", "#irc_"),
        # Bridges' own anchors: ^ is redundant with re.match, $ ends the id.
        (rf"^@whatsapp_.*{ORG}$", r"@.*", "@whatsapp_:example.org"),
        # Matched from the start only: "@a" claims every id starting so.
        (r"@a", r"@ab$", "@ab"),
        (r"@a|@b", r"@bc$", "@bc"),
        (rf"@a_[^:]*{ORG}", rf"@a_b{ORG}$", "@a_b:example.org"),
        (r"(?i)@WA_.*", r"@wa_x", "@wa_x"),
        (r"@x\Z", r"@x", "@x"),
        (r"!.*:example\.org", r"!abc:example\.org", "!abc:example.org"),
    ],
)
def test_overlapping(a: str, b: str, example: str) -> None:
    assert shared_id(a, b) == Overlap(example)
    assert shared_id(b, a) is not None
    assert re.match(a, example) and re.match(b, example)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (r"@a_.*", r"@b_.*"),
        (rf"@whatsapp_.*{ORG}", rf"@_discord_[0-9]+{ORG}"),
        (r"@ab$", r"@a$"),
        (r"^@.*:example\.org$", r"^@.*:example\.com$"),
        (rf"^@signal_[a-f0-9-]+{ORG}$", rf"^@signalbot{ORG}$"),
        (r"#irc_.*", r"@irc_.*"),
    ],
)
def test_disjoint(a: str, b: str) -> None:
    assert shared_id(a, b) is None
    assert shared_id(b, a) is None


def test_whole_match_rewrites_anchors_per_alternative() -> None:
    assert whole_match(r"^@a_.*:x$") == "(?:@a_.*:x)"
    assert whole_match(r"@a|^@b$") == "(?:@a).*|(?:@b)"
    assert whole_match(r"(?i)@a\$") == r"(?i)(?:@a\$).*"  # an escaped $ is a character
    assert whole_match(r"@(a|b)[|]x") == "(?:@(a|b)[|]x).*"  # no top-level |


def test_features_interegular_lacks_are_undecided() -> None:
    with pytest.raises(Undecided, match="Group references"):
        shared_id(r"@(a)\1", r"@a")


def test_sample_ids() -> None:
    assert sample_ids(rf"@irc_.*{ORG}", "example.org")[:3] == ["@irc_:example.org", "@irc_", "@irc_x"]
    # A back-reference: no shortest id, only the literal start and its endings.
    samples = sample_ids(r"@a(b)\1x?", "hs")
    assert samples[0] == "@a" and "@ax:hs" in samples
