"""sync.lazy_members.SentMembers: what counts as already sent, and its bounds."""

from __future__ import annotations

from dendrite_lite.sync.lazy_members import SentMembers

U, D, R = "@u:test", "DEV", "!r:test"


def test_sent_only_for_tokens_at_or_after_the_response() -> None:
    sent = SentMembers()
    sent.record(U, D, R, [("@a:test", "$a1")], 10)
    assert sent.already_sent(U, D, R, "@a:test", "$a1", 10)
    assert sent.already_sent(U, D, R, "@a:test", "$a1", 15)
    assert not sent.already_sent(U, D, R, "@a:test", "$a1", 9)  # that response may be lost
    assert not sent.already_sent(U, D, R, "@a:test", "$a2", 15)  # the member changed
    assert not sent.already_sent(U, "OTHER", R, "@a:test", "$a1", 15)
    assert not sent.already_sent(U, D, "!other:test", "@a:test", "$a1", 15)


def test_resending_keeps_the_first_position_and_a_change_replaces_it() -> None:
    sent = SentMembers()
    sent.record(U, D, R, [("@a:test", "$a1")], 10)
    sent.record(U, D, R, [("@a:test", "$a1")], 20)  # a retried sync sent it again
    assert sent.already_sent(U, D, R, "@a:test", "$a1", 12)
    sent.record(U, D, R, [("@a:test", "$a2")], 30)
    assert not sent.already_sent(U, D, R, "@a:test", "$a2", 25)
    assert sent.already_sent(U, D, R, "@a:test", "$a2", 30)


def test_reset_and_forget_room() -> None:
    sent = SentMembers()
    sent.record(U, D, R, [("@a:test", "$a1")], 10)
    sent.record(U, D, "!s:test", [("@a:test", "$s1")], 10)
    sent.forget_room(U, D, R)
    assert not sent.already_sent(U, D, R, "@a:test", "$a1", 10)
    assert sent.already_sent(U, D, "!s:test", "@a:test", "$s1", 10)
    sent.reset(U, D)
    assert not sent.already_sent(U, D, "!s:test", "@a:test", "$s1", 10)


def test_bounded_per_device_and_in_devices() -> None:
    sent = SentMembers(max_devices=2, max_members=3)
    sent.record(U, D, R, [(f"@m{i}:test", f"$e{i}") for i in range(5)], 1)
    assert [sent.already_sent(U, D, R, f"@m{i}:test", f"$e{i}", 1) for i in range(5)] == [
        False, False, True, True, True,
    ]
    sent.record(U, "D2", R, [("@a:test", "$a")], 1)
    sent.record(U, D, R, [("@b:test", "$b")], 1)  # D used again: D2 is now the oldest
    sent.record(U, "D3", R, [("@a:test", "$a")], 1)
    assert not sent.already_sent(U, "D2", R, "@a:test", "$a", 1)
    assert sent.already_sent(U, D, R, "@b:test", "$b", 1)
    assert sent.already_sent(U, "D3", R, "@a:test", "$a", 1)
