"""Registration files: what bridges write is read as Synapse reads it, and every mistake is
named by file and field (appservice/registration.py, config.py's appservices check)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from dendrite_lite.appservice.registration import RegistrationError, load_registrations
from dendrite_lite.appservice.registry import AppServices
from dendrite_lite.config import ConfigError, load_config

SERVER = "example.org"


def _write(tmp_path: Path, name: str, **fields: Any) -> Path:
    data: dict[str, Any] = {
        "id": name, "url": "http://127.0.0.1:29318", "as_token": f"as-{name}",
        "hs_token": f"hs-{name}", "sender_localpart": f"{name}bot",
        "namespaces": {"users": [{"exclusive": True, "regex": f"@{name}_.*:example\\.org"}]},
    }
    data.update(fields)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_mautrix_style_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "whatsapp", rate_limited=False, protocols=["whatsapp"],
        **{"de.sorunome.msc2409.push_ephemeral": True, "org.matrix.msc3202": True,
           "io.element.msc4190": True},
    )
    (reg,) = load_registrations([path], SERVER)
    assert (reg.id, reg.url, reg.sender(SERVER)) == (
        "whatsapp", "http://127.0.0.1:29318", "@whatsappbot:example.org"
    )
    assert (reg.rate_limited, reg.receive_ephemeral, reg.device_lists, reg.device_management) == (
        False, True, True, True
    )
    assert reg.protocols == ("whatsapp",)
    # Matched from the start, as Synapse's re.match.
    assert reg.matches("users", "@whatsapp_123:example.org")
    assert not reg.matches("users", "@x_whatsapp_123:example.org")


def test_url_may_be_null_and_defaults_apply(tmp_path: Path) -> None:
    (reg,) = load_registrations([_write(tmp_path, "bot", url=None)], SERVER)
    assert reg.url is None
    assert reg.rate_limited is True and reg.receive_ephemeral is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"as_token": ""}, "as_token: required"),
        ({"hs_token": None}, "hs_token: required"),
        ({"sender_localpart": "Bad Name"}, "sender_localpart: 'Bad Name' is not a valid"),
        ({"url": "ftp://x"}, "url: expected an http(s) URL"),
        ({"namespaces": {"users": [{"regex": "(", "exclusive": True}]}},
         "namespaces.users[0].regex: '(' is not a valid regular expression"),
        ({"namespaces": {"aliases": [{"regex": "#a", "exclusive": "yes"}]}},
         "namespaces.aliases[0].exclusive: expected true or false"),
        ({"namespaces": {"rooms": "!x"}}, "namespaces.rooms: expected a list"),
        ({"rate_limited": "no"}, "rate_limited: expected true or false"),
    ],
)
def test_errors_name_file_and_field(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    path = _write(tmp_path, "bad", **fields)
    with pytest.raises(RegistrationError) as e:
        load_registrations([path], SERVER)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(RegistrationError, match="registration file not found"):
        load_registrations([tmp_path / "none.yaml"], SERVER)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(RegistrationError, match=f"{bad}: invalid YAML"):
        load_registrations([bad], SERVER)


def test_duplicate_ids_and_tokens(tmp_path: Path) -> None:
    a = _write(tmp_path, "a")
    b = _write(tmp_path, "b", id="a")
    with pytest.raises(RegistrationError, match=f"{b}: id: the same id as {a}"):
        load_registrations([a, b], SERVER)
    c = _write(tmp_path, "c", as_token="as-a")
    with pytest.raises(RegistrationError, match=f"{c}: as_token: the same as_token as {a}"):
        load_registrations([a, c], SERVER)


def _users(regex: str, exclusive: bool = True) -> dict[str, Any]:
    return {"users": [{"regex": regex, "exclusive": exclusive}]}


def test_overlapping_exclusive_namespaces(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", namespaces={"aliases": [{"regex": "#irc_.*", "exclusive": True}]})
    b = _write(tmp_path, "b", namespaces={"aliases": [{"regex": "#irc_.*", "exclusive": False}]})
    with pytest.raises(RegistrationError, match=r"namespaces.aliases\[0\].regex: '#irc_\.\*' is exclusive"):
        load_registrations([a, b], SERVER)
    # One AS claiming another's sender exclusively.
    c = _write(tmp_path, "c", namespaces={"users": [{"regex": "@.*bot:example.org", "exclusive": True}]})
    d = _write(tmp_path, "d")
    with pytest.raises(RegistrationError, match="claims @dbot:example.org, the sender of appservice 'd'"):
        load_registrations([c, d], SERVER)


def test_different_regexes_sharing_ids_are_refused_with_an_example(tmp_path: Path) -> None:
    wa = _write(tmp_path, "wa", namespaces=_users(r"^@whatsapp_.*:example\.org$"))
    other = _write(tmp_path, "other", namespaces={"users": [
        {"regex": r"@_discord_[0-9]+:example\.org", "exclusive": True},
        {"regex": r"@whatsapp_.+:example\.org", "exclusive": True},
    ]})
    with pytest.raises(RegistrationError) as e:
        load_registrations([wa, other], SERVER)
    assert str(e.value) == (
        f"{wa}: namespaces.users[0].regex: '^@whatsapp_.*:example\\\\.org$' is exclusive here but "
        f"overlaps {other}'s '@whatsapp_.+:example\\\\.org' (appservice 'other'), "
        "e.g. '@whatsapp_x:example.org'"
    )


def test_disjoint_exclusive_namespaces_load(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", namespaces=_users("@a_.*"))
    b = _write(tmp_path, "b", namespaces=_users("@b_.*"))
    discord = _write(tmp_path, "discord", namespaces=_users(r"@_discord_[0-9]+:example\.org"))
    telegram = _write(tmp_path, "telegram", namespaces=_users(r"@telegram_.+:example\.org"))
    assert len(load_registrations([a, b, discord, telegram], SERVER)) == 4


def test_shared_namespaces_are_allowed_when_neither_is_exclusive(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", namespaces={"users": [
        {"regex": "@a_.*", "exclusive": True}, {"regex": "@shared_.*", "exclusive": False},
    ]})
    b = _write(tmp_path, "b", namespaces={"users": [
        {"regex": "@b_.*", "exclusive": True}, {"regex": "@shared_x.*", "exclusive": False},
    ]})
    assert len(load_registrations([a, b], SERVER)) == 2


@pytest.mark.parametrize("exclusive_first", [True, False])
def test_exclusive_against_non_exclusive_is_refused(tmp_path: Path, exclusive_first: bool) -> None:
    owner = _write(tmp_path, "owner", namespaces=_users("@irc_.*"))
    guest = _write(tmp_path, "guest", namespaces=_users("@irc_freenode_.*", exclusive=False))
    files = [owner, guest] if exclusive_first else [guest, owner]
    with pytest.raises(RegistrationError) as e:
        load_registrations(files, SERVER)
    assert str(e.value) == (
        f"{owner}: namespaces.users[0].regex: '@irc_.*' is exclusive here but overlaps "
        f"{guest}'s '@irc_freenode_.*' (appservice 'guest'), e.g. '@irc_freenode_'"
    )


def test_a_regex_the_checker_cannot_read_is_compared_the_old_way(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A back-reference (no regular language): a warning, then identical regexes and sample
    ids; never a refusal for the checker's own limits."""
    odd = _write(tmp_path, "odd", namespaces=_users(r"@(x)\1_.*"))
    fine = _write(tmp_path, "fine", namespaces=_users("@b_.*"))
    with caplog.at_level("WARNING", logger="dendrite_lite.appservice.registration"):
        assert len(load_registrations([odd, fine], SERVER)) == 2
    assert f"{odd}: namespaces.users[0].regex: cannot tell whether" in caplog.text
    assert "Group references" in caplog.text
    same = _write(tmp_path, "same", namespaces=_users(r"@(x)\1_.*", exclusive=False))
    with pytest.raises(RegistrationError, match="overlaps .*same.yaml's"):
        load_registrations([odd, same], SERVER)
    sampled = _write(tmp_path, "sampled", namespaces=_users("@xx_.*", exclusive=False))
    with pytest.raises(RegistrationError, match=r"overlaps .*sampled.yaml's '@xx_\.\*' .*e\.g\. '@xx_'"):
        load_registrations([odd, sampled], SERVER)


def test_config_check_names_the_key_and_file(tmp_path: Path) -> None:
    bad = _write(tmp_path, "bad", namespaces={"users": [{"regex": "[", "exclusive": True}]})
    config = tmp_path / "dendrite-lite.toml"
    config.write_text(f'[server]\nserver_name = "{SERVER}"\n[appservices]\nregistration_files = ["bad.yaml"]\n')
    with pytest.raises(ConfigError) as e:
        load_config(config)
    assert str(e.value).startswith(f"appservices.registration_files: {bad}: namespaces.users[0].regex")
    _write(tmp_path, "bad")  # fixed: relative paths are relative to the config file
    assert load_config(config).appservices.registration_files == (bad,)


def test_registry_namespace_questions(tmp_path: Path) -> None:
    a = _write(tmp_path, "a", namespaces={
        "users": [{"regex": "@a_.*:example.org", "exclusive": True},
                  {"regex": "@shared_.*:example.org", "exclusive": False}],
        "aliases": [{"regex": "#a_.*", "exclusive": True}],
    })
    b = _write(tmp_path, "b")
    registry = AppServices(load_registrations([a, b], SERVER), SERVER)
    reg_a = registry.by_id("a")
    assert reg_a is not None and registry.by_as_token("as-a") is reg_a
    assert registry.by_as_token("hs-a") is None
    assert registry.may_act_as(reg_a, "@abot:example.org")
    assert registry.may_act_as(reg_a, "@shared_x:example.org")
    assert not registry.may_act_as(reg_a, "@b_x:example.org")
    assert not registry.may_act_as(reg_a, "@a_x:elsewhere.org")
    assert registry.exclusive_owner("users", "@a_1:example.org") is reg_a
    assert registry.exclusive_owner("users", "@shared_1:example.org") is None
    assert registry.exclusive_owner("users", "@bbot:example.org") is registry.by_id("b")
    assert registry.exclusive_owner("aliases", "#a_room:example.org") is reg_a
    assert registry.may_register(None, "@shared_1:example.org")
    assert not registry.may_register(None, "@a_1:example.org")
    assert registry.may_register(reg_a, "@a_1:example.org")


def test_the_readme_example_loads(tmp_path: Path) -> None:
    """README's Bridges section: its registration file and config lines work as shown."""
    import re
    import tomllib

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("## Bridges", 1)[1].split("\n## ", 1)[0]
    toml_text = re.search(r"```toml\n(.*?)```", section, re.DOTALL)
    yaml_text = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert toml_text and yaml_text
    files = tomllib.loads(toml_text[1])["appservices"]["registration_files"]
    assert files == ["/etc/mautrix-whatsapp/registration.yaml"]
    path = tmp_path / "registration.yaml"
    path.write_text(yaml_text[1].replace("<random>", "tok1", 1).replace("<random>", "tok2", 1))
    (reg,) = load_registrations([path], SERVER)
    assert reg.matches("users", "@whatsapp_123:example.org")
    assert not reg.matches("users", "@whatsapp_123:exampleXorg")
    assert (reg.receive_ephemeral, reg.rate_limited) == (True, False)
