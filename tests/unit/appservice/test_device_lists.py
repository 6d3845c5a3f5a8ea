"""MSC3202 device list rows folding into one transaction's device_lists."""

from __future__ import annotations

from dendrite_lite.appservice.device_lists import entry, fold


def test_no_rows_no_device_lists() -> None:
    assert fold([]) is None


def test_the_later_row_of_a_user_wins_and_duplicates_go() -> None:
    rows = [
        entry("@a:x", left=False), entry("@b:x", left=False), entry("@a:x", left=False),
        entry("@b:x", left=True),  # changed, then left: left only
        entry("@c:x", left=True), entry("@c:x", left=False),  # left, then back: changed only
    ]
    assert fold(rows) == {"changed": ["@a:x", "@c:x"], "left": ["@b:x"]}
