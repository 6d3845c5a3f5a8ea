"""Resolving aliases (rooms/aliases.resolve_alias): ours from our table, other servers' through
the remote lookup (federation/joins.resolve_remote_alias over a fake federation client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.errors import MatrixError
from dendrite_lite.federation.client import RemoteError, UnreachableError
from dendrite_lite.federation.joins import resolve_remote_alias
from dendrite_lite.rooms.aliases import resolve_alias
from dendrite_lite.storage import Storage
from dendrite_lite.storage import aliases as aliases_table

US = "test"


class FakeClient:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def get_json(self, destination: str, path: str, **kw: Any) -> Any:
        self.calls.append((destination, path, kw))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    s = await Storage.open(tmp_path / "db.sqlite", readers=2)
    await s.db.write(lambda c: aliases_table.insert_alias(c, f"#here:{US}", "!room:test", "@a:test", 0))
    yield s
    await s.close()


async def error_of(call: Any) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        await call
    return info.value


async def test_other_servers_aliases_go_to_the_remote_lookup(storage: Storage) -> None:
    asked: list[str] = []

    async def remote(alias: str) -> tuple[str, list[str]]:
        asked.append(alias)
        return "!far:far.example", ["far.example"]

    found = await resolve_alias(storage, server_name=US, alias="#x:far.example", remote=remote)
    assert found == ("!far:far.example", ["far.example"])
    # Ours never leave the server, known or not.
    assert await resolve_alias(storage, server_name=US, alias=f"#here:{US}", remote=remote) == (
        "!room:test", [US]
    )
    e = await error_of(resolve_alias(storage, server_name=US, alias=f"#gone:{US}", remote=remote))
    assert e.errcode == "M_NOT_FOUND"
    assert asked == ["#x:far.example"]


async def test_without_a_remote_lookup_other_servers_aliases_are_unknown(storage: Storage) -> None:
    e = await error_of(resolve_alias(storage, server_name=US, alias="#x:far.example"))
    assert (e.status, e.errcode) == (404, "M_NOT_FOUND")


async def test_remote_lookup_asks_the_aliases_server() -> None:
    client = FakeClient({"room_id": "!r:far.example", "servers": ["far.example", 3, "b.example"]})
    found = await resolve_remote_alias(client, "#x:far.example")  # type: ignore[arg-type]
    assert found == ("!r:far.example", ["far.example", "b.example"])
    assert client.calls == [
        ("far.example", "/_matrix/federation/v1/query/directory", {"query": {"room_alias": "#x:far.example"}})
    ]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (RemoteError("far.example", 404, {"errcode": "M_NOT_FOUND", "error": "nope"}), "HTTP 404"),
        (UnreachableError("far.example", "connection refused"), "far.example could not be reached"),
        ({"servers": []}, "sent no room id"),
        ({"room_id": 7}, "sent no room id"),
        ([1, 2], "sent no room id"),
    ],
)
async def test_remote_lookup_failures_are_404(answer: Any, words: str) -> None:
    e = await error_of(resolve_remote_alias(FakeClient(answer), "#x:far.example"))  # type: ignore[arg-type]
    assert (e.status, e.errcode) == (404, "M_NOT_FOUND")
    assert words in e.error


async def test_remote_answer_without_servers_list() -> None:
    client = FakeClient({"room_id": "!r:far.example", "servers": "x"})
    found = await resolve_remote_alias(client, "#x:far.example")  # type: ignore[arg-type]
    assert found == ("!r:far.example", [])
