"""preview_html.py: OpenGraph tags, fallbacks, absolute image URLs, charsets, long values."""

from __future__ import annotations

from dendrite_lite.media.preview_html import MAX_VALUE, decode_page, parse_open_graph


def test_og_tags_win_over_fallbacks_and_first_of_repeated_kept() -> None:
    html = """<title>T</title><meta name="description" content="plain">
    <meta property="og:title" content="OG"><meta property="og:image" content="a.png">
    <meta property="og:image" content="b.png"><meta property="OG:Site_Name" content=" Site ">"""
    assert parse_open_graph(html, "https://example.org/dir/page") == {
        "og:title": "OG", "og:description": "plain",
        "og:image": "https://example.org/dir/a.png", "og:site_name": "Site",
    }


def test_unsafe_or_oversized_values_dropped() -> None:
    html = f"""<meta property="og:image" content="javascript:alert(1)">
    <meta property="og:description" content="{'x' * (MAX_VALUE + 1)}"><meta property="og:title" content="  ">"""
    assert parse_open_graph(html, "https://example.org/") == {}


def test_title_only_first_title_element() -> None:
    html = "<head><title>One\n two</title></head><svg><title>icon</title></svg>"
    assert parse_open_graph(html, "https://example.org/") == {"og:title": "One two"}


def test_charset_from_header_then_meta_then_utf8() -> None:
    latin1 = "<title>caf\u00e9</title>".encode("latin-1")
    assert decode_page(latin1, "text/html; charset=ISO-8859-1") == "<title>caf\u00e9</title>"
    assert decode_page(b'<meta charset="latin-1">' + latin1, "text/html").endswith("caf\u00e9</title>")
    assert decode_page("caf\u00e9".encode(), "text/html; charset=no-such-charset") == "caf\u00e9"
    assert decode_page(b"\xff", "text/html") == "\ufffd"
