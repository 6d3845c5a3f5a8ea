"""Sync and pagination tokens."""

from __future__ import annotations

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.sync.tokens import (
    SyncToken,
    pagination_token,
    parse_pagination_token,
    parse_sync_token,
)


def test_round_trip_every_stream() -> None:
    tok = SyncToken(room=-5, account_data=2, receipts=3, typing=4, presence=5, to_device=6,
                    device_lists=7, thread_subscriptions=8)
    assert tok.encode() == "s-5_2_3_4_5_6_7_8"
    assert parse_sync_token(tok.encode()) == tok


def test_older_shorter_tokens_read_missing_streams_as_zero() -> None:
    assert parse_sync_token("s12_3") == SyncToken(room=12, account_data=3)


def test_newer_longer_tokens_ignore_unknown_streams() -> None:
    assert parse_sync_token("s1_2_3_4_5_6_7_8_9_10") == SyncToken(1, 2, 3, 4, 5, 6, 7, 8)


@pytest.mark.parametrize("bad", ["", "x1", "s", "s1_a", "s1__2", "s" + "1" * 30, "t1"])
def test_garbage_is_invalid_param(bad: str) -> None:
    with pytest.raises(MatrixError) as exc:
        parse_sync_token(bad)
    assert exc.value.errcode == "M_INVALID_PARAM" and exc.value.status == 400


def test_clamp_resets_restarted_streams() -> None:
    old = SyncToken(room=10, typing=50, receipts=3)
    now = SyncToken(room=12, typing=2, receipts=3)
    assert old.clamp(now) == SyncToken(room=10, typing=0, receipts=3)
    assert SyncToken(room=99).clamp(now).room == 12
    assert old.clamp(SyncToken(room=10, typing=60, receipts=3)) is old


def test_advanced_by() -> None:
    a = SyncToken(room=1, typing=1)
    assert a.advanced_by(SyncToken(room=1, typing=2))
    assert not a.advanced_by(SyncToken(room=1, typing=1))


def test_pagination_tokens() -> None:
    assert parse_pagination_token(pagination_token(-3)) == -3
    assert parse_pagination_token("s42_1_2") == 42
    # A sliding sync pos (MSC4186 lets /messages take one): its sync token's room position.
    assert parse_pagination_token("7/s42_1_2") == 42
    for bad in ("nope", "7/t4", "x/s42", "/s42", "7/s4_x"):
        with pytest.raises(MatrixError):
            parse_pagination_token(bad)


def test_sliding_pos_round_trips_and_rejects_other_strings() -> None:
    from dendrite_lite.sync.tokens import SyncToken, encode_sliding_pos, parse_sliding_pos

    token = SyncToken(room=12, account_data=3, thread_subscriptions=7)
    assert parse_sliding_pos(encode_sliding_pos(41, token)) == (41, token)
    for bad in ("41", "41/", "/s1_2", "x/s1_2", "41/t5", "41/s1_x", "ts7", ""):
        assert parse_sliding_pos(bad) is None, bad
