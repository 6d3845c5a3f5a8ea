"""What an email notification says (push/email_digest.py): lines per kind of message, room
names, the room link, the subject, and both bodies."""

from __future__ import annotations

from dendrite_lite.push.email_digest import (
    RoomDigest,
    message_line,
    render_mail,
    room_link,
    room_name,
)


def test_message_lines() -> None:
    assert message_line("Bob", "m.room.message", {"msgtype": "m.text", "body": "Hi\nthere"}) == (
        "Bob: Hi there"
    )
    assert message_line("Bob", "m.room.message", {"msgtype": "m.notice", "body": "n"}) == "Bob: n"
    assert message_line("Bob", "m.room.message", {"msgtype": "m.emote", "body": "waves"}) == (
        "* Bob waves"
    )
    assert message_line("Bob", "m.room.message", {"msgtype": "m.image", "body": "x.png"}) == (
        "Bob sent an image"
    )
    assert message_line("Bob", "m.room.message", {"msgtype": "m.file", "body": "a.pdf"}) == (
        "Bob sent a file"
    )
    encrypted = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "secret-looking"}
    assert message_line("Bob", "m.room.encrypted", encrypted) == "Bob sent an encrypted message"
    assert message_line("Bob", "m.room.message", {}) == "Bob sent a message that was deleted"
    long = message_line("Bob", "m.room.message", {"msgtype": "m.text", "body": "x" * 500})
    assert len(long) == len("Bob: ") + 200 and long.endswith("…")


def test_room_names() -> None:
    assert room_name("Family", "#fam:example.org", ["Bob"]) == "Family"
    assert room_name(None, "#fam:example.org", ["Bob"]) == "#fam:example.org"
    assert room_name("  ", None, ["Bob"]) == "Bob"
    assert room_name(None, None, ["Bob", "Carol"]) == "Bob and Carol"
    assert room_name(None, None, ["Bob", "Carol", "Dan", "Eve"]) == "Bob, Carol and 2 others"
    assert room_name(None, None, []) == "an empty room"
    assert room_name("Evil\r\nBcc: x@y", None, []) == "Evil Bcc: x@y"


def test_room_link() -> None:
    assert room_link("https://app.element.io/", "!abc:example.org") == (
        "https://app.element.io/#/room/!abc:example.org"
    )
    assert room_link("https://chat.example.org", "!a b:x") == "https://chat.example.org/#/room/!a%20b:x"


def _mail(rooms: list[RoomDigest]):
    return render_mail(
        brand="Element", server_name="example.org", user_name="Alice", address="a@example.org",
        rooms=rooms, unsubscribe_link="https://m.example.org/unsub?token=T",
    )


def test_one_room_mail() -> None:
    room = RoomDigest(
        "Family", "https://app.element.io/#/room/!f:x", ["Bob: <b>Dinner</b> at 7?"], more=2
    )
    mail = _mail([room])
    assert mail.subject == "[Element] New messages in Family"
    assert "Hi Alice," in mail.text
    assert "Family\n  Bob: <b>Dinner</b> at 7?\n  (and 2 more)\n  Open: https://app.element.io/#/room/!f:x" in mail.text
    assert mail.text.rstrip().endswith("https://m.example.org/unsub?token=T")
    assert "a@example.org" in mail.text
    assert "&lt;b&gt;Dinner&lt;/b&gt;" in mail.html and "<b>Dinner" not in mail.html
    assert 'href="https://m.example.org/unsub?token=T"' in mail.html


def test_invite_and_several_rooms() -> None:
    invite = RoomDigest("Holiday", "https://c/#/room/!h:x", [], invited_by="Bob")
    assert _mail([invite]).subject == "[Element] Bob invited you to Holiday"
    assert "Bob invited you to Holiday\n  Open: https://c/#/room/!h:x" in _mail([invite]).text
    other = RoomDigest("Work", "https://c/#/room/!w:x", ["Carol: hi"])
    assert _mail([other, invite]).subject == "[Element] New messages in Work and 1 other room"
    three = _mail([other, invite, other]).subject
    assert three == "[Element] New messages in Work and 2 other rooms"
