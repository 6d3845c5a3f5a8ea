"""Email notifications (push.md §Pushers, kind "email") through a real server and a real SMTP
server on loopback (tests/integration/smtp_sink.py): setting an email pusher for a confirmed
address and every refusal, the mail about unread messages after the delay (room, sender, text,
link, encrypted messages named only), an invite, read messages left out, the per-room throttle,
a restart losing and repeating nothing, a mail server that is down, the unsubscribe link (GET
and one-click POST), and the pusher going with its address.

The delay is a second or two (email.notif_delay_minutes is a float) so the tests stay fast."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.storage import threepids as threepids_table
from tests.conftest import RunningServer, StartServer
from tests.integration.account_helpers import running_server, server_storage
from tests.integration.smtp_sink import Received, SmtpSink
from tests.integration.sync_helpers import User, create_room, join, numbered_user, send
from tests.interop.synapse_server import free_port
from tests.spec_schema import assert_matches_operation

BASE = "https://matrix.example.org/"
DELAY_MIN = 0.02  # 1.2 s
_n = itertools.count()


def _overrides(sink: SmtpSink, delay_min: float = DELAY_MIN) -> dict[str, Any]:
    return sink.config(**{
        "server.public_baseurl": BASE, "email.notif_delay_minutes": delay_min,
        "email.notif_throttle_minutes": 10.0,
    })


@pytest.fixture(scope="module")
async def srv(
    tmp_path_factory: pytest.TempPathFactory, smtp_sink: SmtpSink
) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path_factory.mktemp("emailnotif"), _overrides(smtp_sink)) as s:
        yield s


async def _confirmed(srv: RunningServer, user: User) -> str:
    """An address confirmed on the user's account (the confirmation itself is
    test_email_threepids.py's)."""
    address = f"notif-{next(_n)}@example.org"
    await server_storage(srv).db.write(lambda c: threepids_table.insert_user_threepid(
        c, user.user_id, "email", address, validated_at=1, added_at=1
    ))
    return address


async def _set_email_pusher(user: User, address: str, **change: Any) -> Any:
    body = {
        "kind": "email", "app_id": "m.email", "pushkey": address,
        "app_display_name": "Email Notifications", "device_display_name": address,
        "lang": "en", "data": {"brand": "Family"}, **change,
    }
    return await user.post("/pushers/set", body)


async def _pushers(user: User) -> list[dict[str, Any]]:
    resp = await user.get("/pushers")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["pushers"])


async def _chat(srv: RunningServer, name: str) -> tuple[User, User, str, str]:
    """alice (with an email pusher) and bob ("Bob Example") in bob's room: (alice, bob, room,
    alice's address)."""
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    resp = await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Bob Example"})
    assert resp.status_code == 200, resp.text
    room = await create_room(bob, name=name, invite=[alice.user_id])
    await join(alice, room)
    address = await _confirmed(srv, alice)
    resp = await _set_email_pusher(alice, address)
    assert resp.status_code == 200, resp.text
    return alice, bob, room, address


def _text(mail: Received) -> str:
    part = mail.message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _unsubscribe_path(mail: Received) -> str:
    link = re.findall(r"^http\S+$", _text(mail), re.MULTILINE)[-1]
    assert mail.message["List-Unsubscribe"] == f"<{link}>"
    assert link.startswith(BASE + "_dendrite_lite/client/email/unsubscribe?token="), link
    parts = urllib.parse.urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def test_set_list_and_refusals(srv: RunningServer) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    address = await _confirmed(srv, alice)
    resp = await _set_email_pusher(alice, address.upper())  # addresses compare lower-cased
    assert resp.status_code == 200, resp.text
    listed = (await alice.get("/pushers")).json()
    assert_matches_operation("client-server/pusher.yaml", "/pushers", "get", 200, listed)
    assert listed["pushers"] == [{
        "pushkey": address, "kind": "email", "app_id": "m.email",
        "app_display_name": "Email Notifications", "device_display_name": address.upper(),
        "lang": "en", "data": {"brand": "Family"},
    }]
    for user, pushkey, change, errcode in (
        (alice, "never-confirmed@example.org", {}, "M_THREEPID_NOT_FOUND"),
        (bob, address, {}, "M_THREEPID_NOT_FOUND"),  # alice's, not bob's
        (alice, address, {"app_id": "org.example.mail"}, "M_INVALID_PARAM"),
        (alice, address, {"data": []}, "M_INVALID_PARAM"),
    ):
        resp = await _set_email_pusher(user, pushkey, **change)
        assert resp.status_code == 400, resp.text
        assert resp.json()["errcode"] == errcode, resp.text
    assert await _pushers(bob) == []
    resp = await alice.post("/pushers/set", {"kind": None, "app_id": "m.email", "pushkey": address})
    assert resp.status_code == 200, resp.text
    assert await _pushers(alice) == []
    # Without `data` (Synapse's clients leave it out), then the address leaves the account.
    resp = await alice.post("/pushers/set", {
        "kind": "email", "app_id": "m.email", "pushkey": address, "app_display_name": "Email",
        "device_display_name": address, "lang": "en",
    })
    assert resp.status_code == 200, resp.text
    resp = await alice.post("/account/3pid/delete", {"medium": "email", "address": address})
    assert resp.status_code == 200, resp.text
    assert await _pushers(alice) == []


@pytest.mark.parametrize("email_config", ["none", "notifications off"])
async def test_refused_without_email_notifications(
    start_server: StartServer, smtp_sink: SmtpSink, email_config: str
) -> None:
    overrides = {} if email_config == "none" else smtp_sink.config(**{"email.notif_enabled": False})
    server = await start_server({"registration.mode": "open", **overrides})
    alice = await numbered_user(server, "alice")
    resp = await _set_email_pusher(alice, await _confirmed(server, alice))
    assert resp.status_code == 400, resp.text
    assert resp.json() == {
        "errcode": "M_INVALID_PARAM", "error": "Email notifications are not available on this server",
    }


async def test_unread_messages_are_mailed_once_throttled_and_unsubscribed(
    srv: RunningServer, smtp_sink: SmtpSink
) -> None:
    alice, bob, room, address = await _chat(srv, "Family Chat")
    read = await send(bob, room, "this one alice already read")
    resp = await alice.post(f"/rooms/{room}/receipt/m.read/{read}", {})
    assert resp.status_code == 200, resp.text
    await send(bob, room, "Dinner at 7?")
    resp = await bob.put(f"/rooms/{room}/send/m.room.encrypted/e1", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnAC", "sender_key": "k",
        "session_id": "s", "device_id": "D",
    })
    assert resp.status_code == 200, resp.text

    mail = await smtp_sink.next_to(address)
    text = _text(mail)
    assert mail.message["Subject"] == "[Family] New messages in Family Chat"
    assert "Family Chat\n  Bob Example: Dinner at 7?\n  Bob Example sent an encrypted message\n" in text
    assert f"  Open: https://app.element.io/#/room/{room}\n" in text
    assert "already read" not in text and "AwgAEnAC" not in text
    html = mail.message.get_body(preferencelist=("html",))
    assert html is not None and "Dinner at 7?" in html.get_content()

    # The room was just mailed about: a message now waits for the throttle (10 minutes).
    await send(bob, room, "a second message in the throttle window")
    await asyncio.sleep(DELAY_MIN * 60 + 1.5)
    assert len(smtp_sink.to(address)) == 1

    path = _unsubscribe_path(mail)
    page = await srv.client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Unsubscribed" in page.text
    assert await _pushers(alice) == []
    for bad in (path, path[:-3] + "xyz", "/_dendrite_lite/client/email/unsubscribe"):
        page = await srv.client.get(bad)
        assert page.status_code == 404, bad
        assert "does not work" in page.text


async def test_a_restart_neither_loses_nor_repeats_a_mail(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    overrides = _overrides(smtp_sink, delay_min=0.05)  # 3 s: the restart falls inside it
    async with running_server(tmp_path, overrides) as first:
        alice, bob, room, address = await _chat(first, "Restarted")
        await send(bob, room, "sent before the restart")
    assert smtp_sink.to(address) == []
    async with running_server(tmp_path, overrides):
        mail = await smtp_sink.next_to(address)
        assert "Bob Example: sent before the restart" in _text(mail)
    async with running_server(tmp_path, overrides) as third:
        await asyncio.sleep(1.0)  # a start's pass would have sent it again by now
        assert len(smtp_sink.to(address)) == 1
        alice = dataclasses.replace(alice, client=third.client)
        assert [p["pushkey"] for p in await _pushers(alice)] == [address]


async def test_an_invite_is_mailed_and_one_click_unsubscribes(
    srv: RunningServer, smtp_sink: SmtpSink
) -> None:
    alice, bob = await numbered_user(srv, "alice"), await numbered_user(srv, "bob")
    resp = await bob.put(f"/profile/{bob.user_id}/displayname", {"displayname": "Bob Example"})
    assert resp.status_code == 200, resp.text
    address = await _confirmed(srv, alice)
    assert (await _set_email_pusher(alice, address)).status_code == 200
    room = await create_room(bob, name="Holiday plans")
    resp = await bob.post(f"/rooms/{room}/invite", {"user_id": alice.user_id})
    assert resp.status_code == 200, resp.text

    mail = await smtp_sink.next_to(address)
    assert mail.message["Subject"] == "[Family] Bob Example invited you to Holiday plans"
    text = _text(mail)
    assert f"Bob Example invited you to Holiday plans\n  Open: https://app.element.io/#/room/{room}\n" in text
    # RFC 8058: the mail client POSTs "List-Unsubscribe=One-Click" to the List-Unsubscribe URL.
    resp = await srv.client.post(
        _unsubscribe_path(mail), content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    assert await _pushers(alice) == []


async def test_mail_that_the_mail_server_could_not_take_is_sent_later(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    down = {**_overrides(smtp_sink), "email.smtp_port": free_port()}  # nothing listens there
    async with running_server(tmp_path, down) as first:
        _, bob, room, address = await _chat(first, "Mail server down")
        await send(bob, room, "sent while the mail server was down")
        await asyncio.sleep(DELAY_MIN * 60 + 1.0)  # the pass tried, and failed
    assert smtp_sink.to(address) == []
    async with running_server(tmp_path, _overrides(smtp_sink)):
        mail = await smtp_sink.next_to(address)
        assert "Bob Example: sent while the mail server was down" in _text(mail)
