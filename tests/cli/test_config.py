"""Config loading: defaults, validation messages, path resolution, template round-trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dendrite_lite.config import (
    SECTION_TYPES,
    Config,
    ConfigError,
    is_valid_server_name,
    load_config,
    parse_config,
    split_address,
)
from dendrite_lite.config_template import render_config
from dendrite_lite.ratelimit import RateLimits


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dendrite-lite.toml"
    path.write_text(text)
    return path


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, None)
    return str(info.value)


# --- defaults and path resolution ----------------------------------------------------------


def test_empty_file_gives_defaults_with_paths_in_the_config_dir(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    base = tmp_path.resolve()
    assert config.server.server_name == "localhost"
    assert config.server.data_dir == base / "data"
    assert config.signing_key_path == base / "data" / "signing.key"
    assert config.database_path == base / "data" / "homeserver.db"
    assert config.admin_socket_path == base / "data" / "admin.sock"
    assert config.listen.client == "127.0.0.1:8008"
    assert config.tls.mode == "proxy"
    assert config.database.synchronous == "FULL"
    assert config.database.readers == 4
    assert config.registration.mode == "closed"
    assert config.registration.allow_guests is False
    assert config.federation.trusted_key_servers == ("matrix.org",)
    assert config.logging.level == "info"
    assert config.public_baseurl == "https://localhost/"
    assert config.source_path == base / "dendrite-lite.toml"


def test_relative_paths_resolve_against_the_config_dir_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    monkeypatch.chdir(tmp_path)
    path = write(
        conf_dir,
        """
        [server]
        data_dir = "../var/matrix"
        signing_key_path = "keys/signing.key"
        [database]
        path = "/srv/db.sqlite"
        [tls]
        mode = "files"
        cert_path = "certs/fullchain.pem"
        key_path = "certs/key.pem"
        """,
    )
    config = load_config(path)
    base = conf_dir.resolve()
    assert config.server.data_dir == base / "../var/matrix"
    assert config.signing_key_path == base / "keys/signing.key"
    assert config.database_path == Path("/srv/db.sqlite")
    assert config.tls.cert_path == base / "certs/fullchain.pem"
    assert config.tls.key_path == base / "certs/key.pem"


def test_parse_without_source_keeps_relative_paths() -> None:
    config = parse_config({"server": {"data_dir": "d"}}, None)
    assert config.server.data_dir == Path("d")
    assert config.source_path is None


def test_values_are_normalised() -> None:
    config = parse_config(
        {
            "server": {"server_name": "[::1]:8448", "public_baseurl": "https://m.example.org"},
            "database": {"synchronous": "normal"},
            "logging": {"level": "WARNING"},
            "listen": {"client": "[::1]:8008", "federation": ""},
            "federation": {"trusted_key_servers": []},
            "tls": {"cert_path": ""},
        }
    )
    assert config.public_baseurl == "https://m.example.org/"
    assert config.database.synchronous == "NORMAL"
    assert config.logging.level == "warning"
    assert config.listen.client == "[::1]:8008"
    assert config.listen.federation == ""
    assert config.federation.trusted_key_servers == ()
    assert config.tls.cert_path is None


# --- validation messages ------------------------------------------------------------------


def test_unknown_key_names_the_key_and_suggests() -> None:
    assert error_of({"listen": {"clinet": "127.0.0.1:8008"}}) == (
        'listen.clinet: unknown key; did you mean "client"? '
        "(valid keys in [listen]: client, client_tls, federation, federation_tls, admin_socket, acme_http)"
    )


def test_unknown_section() -> None:
    msg = error_of({"databse": {}})
    assert msg.startswith('databse: unknown section; did you mean "database"?')
    assert "server, listen, tls" in msg


def test_section_must_be_a_table() -> None:
    assert error_of({"server": "x"}) == 'server: expected a table ([server]), got "x"'


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("0.0.0.0:80800", 'listen.client: "0.0.0.0:80800" is not a valid port (1-65535)'),
        ("0.0.0.0:0", 'listen.client: "0.0.0.0:0" is not a valid port (1-65535)'),
        ("0.0.0.0:http", 'listen.client: "0.0.0.0:http" is not a valid port (1-65535)'),
        ("8008", 'listen.client: "8008" is not a valid address (expected "host:port", '
         'e.g. "127.0.0.1:8008" or "[::1]:8008")'),
        ("::1:8008", 'listen.client: "::1:8008": put an IPv6 address in brackets, '
         'e.g. "[::1]:8008"'),
        ("300.1.1.1:80", 'listen.client: "300.1.1.1:80" does not start with a valid host '
         "name or IP"),
    ],
)
def test_bad_listen_addresses(address: str, message: str) -> None:
    assert error_of({"listen": {"client": address}}) == message


def test_split_address() -> None:
    assert split_address("[::1]:8008") == ("::1", 8008)
    assert split_address("0.0.0.0:443") == ("0.0.0.0", 443)
    assert split_address("localhost:8448") == ("localhost", 8448)


def test_bad_server_name() -> None:
    assert error_of({"server": {"server_name": "Ex ample"}}) == (
        'server.server_name: "Ex ample" is not a valid server name '
        "(hostname or IP literal, optional :port)"
    )


@pytest.mark.parametrize(
    "name",
    ["example.org", "matrix.example.org:8448", "1.2.3.4", "1.2.3.4:1234", "[1234:5678::abcd]",
     "[1234:5678::abcd]:5678", "localhost", "ex-ample.org", "EXAMPLE.org"],
)
def test_valid_server_names(name: str) -> None:
    # The examples of content/appendices.md §Server Name, plus a few more.
    assert is_valid_server_name(name)
    assert parse_config({"server": {"server_name": name}}).server.server_name == name


@pytest.mark.parametrize(
    "name",
    ["", "Ex ample", "example.org:", "example.org:0", "example.org:65536", "example.org:123456",
     "256.1.1.1", "[::1", "[zz::1]", "::1", "ex_ample.org", "example..org", "a" * 64 + ".org",
     "example.org/path", "@example.org"],
)
def test_invalid_server_names(name: str) -> None:
    assert not is_valid_server_name(name)


def test_trusted_key_servers_index_in_message() -> None:
    assert error_of({"federation": {"trusted_key_servers": ["matrix.org", "b c"]}}) == (
        'federation.trusted_key_servers[1]: "b c" is not a valid server name '
        "(hostname or IP literal, optional :port)"
    )
    assert error_of({"federation": {"trusted_key_servers": "matrix.org"}}) == (
        'federation.trusted_key_servers: expected a list of server names, got "matrix.org"'
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tls": {"mode": "ftp"}}, 'tls.mode: "ftp" is not one of: acme, files, proxy'),
        ({"server": {"event_loop": "fast"}},
         'server.event_loop: "fast" is not one of: uvloop, asyncio'),
        ({"registration": {"mode": "invite"}},
         'registration.mode: "invite" is not one of: closed, open, token'),
        ({"database": {"synchronous": "fast"}},
         'database.synchronous: "fast" is not one of: OFF, NORMAL, FULL, EXTRA'),
        ({"logging": {"level": "trace"}},
         'logging.level: "trace" is not one of: debug, info, warning, error'),
    ],
)
def test_bad_enum(data: dict, message: str) -> None:
    assert error_of(data) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"limits": {"max_request_bytes": "big"}},
         'limits.max_request_bytes: expected an integer, got "big"'),
        ({"media": {"max_upload_bytes": 1.5}},
         "media.max_upload_bytes: expected an integer, got 1.5"),
        ({"database": {"readers": True}}, "database.readers: expected an integer, got true"),
        ({"registration": {"allow_guests": "yes"}},
         'registration.allow_guests: expected true or false, got "yes"'),
        ({"federation": {"enabled": 1}}, "federation.enabled: expected true or false, got 1"),
        ({"server": {"server_name": 5}}, "server.server_name: expected a string, got 5"),
        ({"server": {"data_dir": ["a"]}}, "server.data_dir: expected a string, got a list"),
        ({"server": {"data_dir": ""}}, "server.data_dir: expected a path, got an empty string"),
        ({"tls": {"mode": {}}}, "tls.mode: expected a string, got a table"),
    ],
)
def test_wrong_types(data: dict, message: str) -> None:
    assert error_of(data) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"database": {"readers": 0}}, "database.readers: 0 is out of range (1-32)"),
        ({"database": {"readers": 33}}, "database.readers: 33 is out of range (1-32)"),
        ({"limits": {"max_request_bytes": 0}},
         "limits.max_request_bytes: 0 is out of range (at least 1)"),
    ],
)
def test_out_of_range(data: dict, message: str) -> None:
    assert error_of(data) == message


def test_url_preview_networks() -> None:
    config = parse_config({"media": {"url_preview_ip_allowlist": ["192.168.1.7/24", "::1"]}})
    assert config.media.url_preview_ip_allowlist == ("192.168.1.0/24", "::1/128")
    assert error_of({"media": {"url_preview_ip_allowlist": ["10.0.0.0/8", "intranet"]}}) == (
        'media.url_preview_ip_allowlist[1]: "intranet" is not an IP network'
        ' (e.g. "192.168.1.0/24" or "::1")'
    )
    assert error_of({"media": {"url_preview_ip_allowlist": "10.0.0.0/8"}}) == (
        'media.url_preview_ip_allowlist: expected a list of IP networks, got "10.0.0.0/8"'
    )


def test_other_value_checks() -> None:
    assert error_of({"server": {"public_baseurl": "matrix.example.org"}}) == (
        'server.public_baseurl: "matrix.example.org" is not an http(s) URL '
        '(e.g. "https://matrix.example.org/")'
    )
    assert error_of({"tls": {"acme_email": "nobody"}}) == (
        'tls.acme_email: "nobody" is not an email address'
    )
    assert error_of({"tls": {"acme_directory": "ftp://x"}}).startswith(
        'tls.acme_directory: "ftp://x" is not an http(s) URL'
    )


def test_acme_and_public_ip_value_checks() -> None:
    assert error_of({"tls": {"acme_names": ["matrix.example.org", "1.2.3.4"]}}) == (
        'tls.acme_names[1]: "1.2.3.4" is not a DNS host name (e.g. matrix.example.org)'
    )
    assert error_of({"tls": {"acme_names": "matrix.example.org"}}) == (
        'tls.acme_names: expected a list of host names, got "matrix.example.org"'
    )
    assert error_of({"tls": {"acme_challenge": "dns-01"}}) == (
        'tls.acme_challenge: "dns-01" is not one of: auto, http-01, tls-alpn-01'
    )
    assert error_of({"server": {"public_ip": "example.org"}}) == (
        'server.public_ip: "example.org" is not an IP address (or "" for unknown)'
    )
    assert error_of({"listen": {"acme_http": "80"}}).startswith('listen.acme_http: "80" is not')


def test_acme_names_default_to_the_server_names_host() -> None:
    config = parse_config({"server": {"server_name": "Example.org:8448"}}, None)
    assert config.acme_names == ("example.org",)
    config = parse_config(
        {"server": {"server_name": "example.org"},
         "tls": {"acme_names": ["Matrix.Example.org"]}}, None
    )
    assert config.acme_names == ("matrix.example.org",)
    assert config.acme_dir == config.server.data_dir / "acme"


def test_files_mode_needs_cert_and_key() -> None:
    assert error_of({"tls": {"mode": "files"}}) == (
        'tls.cert_path: required when tls.mode = "files" '
        "(the PEM certificate chain and private key to serve)"
    )
    assert error_of({"tls": {"mode": "files", "cert_path": "c.pem"}}).startswith(
        'tls.key_path: required when tls.mode = "files"'
    )
    config = parse_config({"tls": {"mode": "files", "cert_path": "c.pem", "key_path": "k.pem"}})
    assert (config.tls.cert_path, config.tls.key_path) == (Path("c.pem"), Path("k.pem"))


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nserver_name = "example.org"\ndata_dir = \n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}, line 3, column 12: invalid TOML: Invalid value"


def test_toml_bare_word_is_a_syntax_error(tmp_path: Path) -> None:
    # `allow_guests = yes` is not TOML: bools must be real TOML booleans.
    path = write(tmp_path, "[registration]\nallow_guests = yes\n")
    with pytest.raises(ConfigError, match=r", line 2, column 16: invalid TOML"):
        load_config(path)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found.*dendrite-lite init"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[server]\nserver_name = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(bad)


# --- template ------------------------------------------------------------------------------


def test_every_option_is_validated_and_documented() -> None:
    text = render_config(Config())
    for section, cls in SECTION_TYPES.items():
        assert f"\n[{section}]\n" in text
        for f in dataclasses.fields(cls):
            # parse_config knows the key (it is not "unknown")...
            default = getattr(cls(), f.name)
            if default is not None:
                parse_config({section: {f.name: _as_toml(default)}})
            # ...and the template writes it right after its comment.
            assert f"\n{f.name} = " in text or f"\n# {f.name} = " in text


def _as_toml(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def test_template_round_trips_a_full_config(tmp_path: Path) -> None:
    path = tmp_path / "dendrite-lite.toml"
    config = parse_config(
        {
            "server": {
                "server_name": "example.org",
                "public_baseurl": "https://matrix.example.org/",
                "data_dir": "/var/lib/dendrite-lite",
                "signing_key_path": "keys/signing.key",
            },
            "listen": {"client": "[::]:443", "federation": "", "admin_socket": "/run/dl.sock"},
            "tls": {"mode": "files", "cert_path": "fullchain.pem", "key_path": "/etc/k.pem",
                    "acme_email": "admin@example.org"},
            "database": {"synchronous": "NORMAL", "readers": 2, "path": "db/main.db"},
            "registration": {"mode": "token", "shared_secret": 'se"cr\\et\n', "allow_guests": True},
            "federation": {"enabled": False, "verify_tls": False, "ca_file": "ca.pem",
                           "trusted_key_servers": ["matrix.org", "[::1]:8448"]},
            "media": {"max_upload_bytes": 10},
            "limits": {"max_request_bytes": 123_456_789},
            "logging": {"level": "debug"},
        },
        path,
    )
    text = render_config(config, relative_to=tmp_path.resolve())
    path.write_text(text)
    assert 'signing_key_path = "./keys/signing.key"' in text
    assert 'data_dir = "/var/lib/dendrite-lite"' in text
    assert load_config(path) == config


def test_template_keeps_default_locations_commented_out(tmp_path: Path) -> None:
    path = tmp_path / "dendrite-lite.toml"
    config = parse_config({"server": {"server_name": "example.org"}}, path)
    text = render_config(config, relative_to=tmp_path.resolve())
    assert '# signing_key_path = "./data/signing.key"' in text
    assert '# path = "./data/homeserver.db"' in text
    path.write_text(text)
    loaded = load_config(path)
    assert loaded == config
    assert loaded.server.signing_key_path is None


@settings(max_examples=60, deadline=None)
@given(
    secret=st.text(st.characters(exclude_categories=["Cs"]), max_size=20),
    readers=st.integers(1, 32),
    level=st.sampled_from(["debug", "info", "warning", "error"]),
    guests=st.booleans(),
)
def test_template_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory, secret: str, readers: int, level: str, guests: bool
) -> None:
    path = tmp_path_factory.mktemp("rt") / "c.toml"
    config = parse_config(
        {
            "registration": {"shared_secret": secret, "allow_guests": guests},
            "database": {"readers": readers},
            "logging": {"level": level},
        },
        path,
    )
    path.write_text(render_config(config, relative_to=path.parent.resolve()), encoding="utf-8")
    assert load_config(path) == config


def test_ratelimit_section_is_read_and_validated(tmp_path) -> None:
    from dendrite_lite.config import ConfigError, parse_config

    cfg = parse_config({"ratelimit": {"enabled": False, "send_per_second": 5, "send_burst": 20}})
    assert cfg.ratelimit.enabled is False
    assert cfg.ratelimit.send_per_second == 5.0 and cfg.ratelimit.send_burst == 20
    with pytest.raises(ConfigError, match=r"ratelimit\.login_per_second: -1 is out of range"):
        parse_config({"ratelimit": {"login_per_second": -1}})
    with pytest.raises(ConfigError, match=r"ratelimit\.send_burst: expected an integer"):
        parse_config({"ratelimit": {"send_burst": "many"}})


def test_ratelimit_burst_0_is_refused_and_the_comment_says_how_to_turn_a_limit_off() -> None:
    # A bucket of 0 tokens refuses every request (ratelimit.py): "off" is a rate of 0, and both
    # the message and the template comment say so (they used to disagree: issue 11 item 7).
    with pytest.raises(ConfigError) as e:
        parse_config({"ratelimit": {"send_burst": 0}})
    assert str(e.value) == (
        "ratelimit.send_burst: 0 is out of range (at least 1: the requests allowed at once;"
        " to turn this limit off, set ratelimit.send_per_second = 0)"
    )
    cfg = parse_config({"ratelimit": {"login_per_second": 0}})
    limits = RateLimits.from_config(cfg.ratelimit)
    for _ in range(50):
        limits.login_ip.check("203.0.113.7")  # never refused
    text = render_config(Config())
    section = text[: text.index("[ratelimit]")].rsplit("\n\n", 1)[1]
    assert "A `per_second`\n# of 0 turns that limit off" in section
    assert "0 turns one off" not in section


def test_default_room_version_is_validated_against_the_versions_we_implement() -> None:
    from dendrite_lite.events.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS

    assert Config().server.default_room_version == DEFAULT_ROOM_VERSION.identifier
    assert parse_config({"server": {"default_room_version": "10"}}).server.default_room_version == "10"
    with pytest.raises(ConfigError) as e:
        parse_config({"server": {"default_room_version": "13"}})
    known = ", ".join(f'"{v}"' for v in KNOWN_ROOM_VERSIONS)
    assert str(e.value) == (
        f'server.default_room_version: "13" is not a room version this server supports ({known})'
    )
    with pytest.raises(ConfigError) as e:
        parse_config({"server": {"default_room_version": 10}})
    assert str(e.value) == (
        'server.default_room_version: expected a string, got 10 (room versions are strings: "10")'
    )
    assert "default_room_version" in render_config(Config())


# --- TLS per listener (issue 12 item 2) ----------------------------------------------------

_FILES = {"mode": "files", "cert_path": "c.pem", "key_path": "k.pem"}
_ACME = {"mode": "acme", "acme_agree_tos": True}


@pytest.mark.parametrize(
    ("tls", "expected"),
    [({}, (False, False)), (_FILES, (True, True)), (_ACME, (True, True))],
)
def test_old_files_keep_their_meaning_without_the_tls_switches(
    tmp_path: Path, tls: dict, expected: tuple[bool, bool]
) -> None:
    # A file written before listen.client_tls / listen.federation_tls existed: every listener
    # serves the certificate unless tls.mode = "proxy", as before.
    config = parse_config({"listen": {"client": "0.0.0.0:443", "federation": "0.0.0.0:8448"},
                           "tls": tls})
    assert (config.listen.client_tls, config.listen.federation_tls) == (None, None)
    assert (config.client_tls, config.federation_tls) == expected


def test_appliance_layout_client_plain_federation_tls() -> None:
    config = parse_config({
        "listen": {"client": "127.0.0.1:8008", "client_tls": False,
                   "federation": "0.0.0.0:8448", "federation_tls": True},
        "tls": _FILES,
    })
    assert (config.client_tls, config.federation_tls) == (False, True)
    reverse = parse_config({"listen": {"client_tls": True, "federation_tls": False}, "tls": _FILES})
    assert (reverse.client_tls, reverse.federation_tls) == (True, False)
    # Plain everywhere with a certificate mode is allowed (e.g. while testing the proxy).
    plain = parse_config({"listen": {"client_tls": False, "federation_tls": False}, "tls": _FILES})
    assert (plain.client_tls, plain.federation_tls) == (False, False)


@pytest.mark.parametrize("name", ["client", "federation"])
def test_tls_listener_needs_a_certificate_source(name: str) -> None:
    assert error_of({"listen": {f"{name}_tls": True}}) == (
        f'listen.{name}_tls: true needs a certificate, but tls.mode = "proxy" has none (a reverse'
        f' proxy does HTTPS): set tls.mode = "files" or "acme", or listen.{name}_tls = false'
    )
    # false is what "proxy" means anyway.
    assert not getattr(parse_config({"listen": {f"{name}_tls": False}}), f"{name}_tls")


def test_tls_switches_are_booleans() -> None:
    assert error_of({"listen": {"client_tls": "yes"}}) == (
        'listen.client_tls: expected true or false, got "yes"'
    )
    assert error_of({"listen": {"federation_tls": 1}}) == (
        "listen.federation_tls: expected true or false, got 1"
    )


def test_one_listener_speaks_tls_or_not() -> None:
    shared = {"client": "0.0.0.0:8448", "federation": "0.0.0.0:8448"}
    assert error_of({"listen": {**shared, "federation_tls": False}, "tls": _ACME}) == (
        "listen.client_tls, listen.federation_tls: listen.client and listen.federation are the"
        ' same address ("0.0.0.0:8448"), so one listener serves both and they must agree; got'
        ' listen.client_tls unset (true from tls.mode = "acme") and listen.federation_tls = false'
    )
    assert error_of({"listen": {"federation": "", "client_tls": False, "federation_tls": True},
                     "tls": _FILES}) == (
        'listen.client_tls, listen.federation_tls: listen.federation = "" serves federation on'
        " the client listener and they must agree; got listen.client_tls = false and"
        " listen.federation_tls = true"
    )
    # An unset switch is tls.mode's value, even on a shared listener: both must be said.
    assert error_of({"listen": {**shared, "client_tls": False}, "tls": _FILES}).endswith(
        'got listen.client_tls = false and listen.federation_tls unset (true from tls.mode ='
        ' "files")'
    )
    config = parse_config(
        {"listen": {**shared, "client_tls": False, "federation_tls": False}, "tls": _FILES}
    )
    assert (config.client_tls, config.federation_tls) == (False, False)
    # Without a federation listener, federation has the client listener's TLS.
    config = parse_config({"listen": {"federation": ""}, "tls": _FILES})
    assert (config.client_tls, config.federation_tls) == (True, True)
    config = parse_config({"listen": {"federation": "", "client_tls": False}, "tls": _FILES})
    assert (config.client_tls, config.federation_tls) == (False, False)


def test_template_documents_the_appliance_layout_and_round_trips_the_switches(
    tmp_path: Path,
) -> None:
    text = render_config(Config())
    listen = text[text.index("# Network addresses"):text.index("[listen]")]
    for line in ('client = "127.0.0.1:8008"', "client_tls = false",
                 'federation = "0.0.0.0:8448"', "federation_tls = true"):
        assert f"#     {line}\n" in listen
    # Unset switches are written commented out, showing what tls.mode makes of them.
    assert "\n# client_tls = false\n" in text and "\n# federation_tls = false\n" in text
    path = tmp_path / "dendrite-lite.toml"
    files = dict(_FILES, cert_path="/c.pem", key_path="/k.pem")
    for listen_table in ({}, {"client_tls": False, "federation_tls": True}):
        config = parse_config({"listen": listen_table, "tls": files}, path)
        path.write_text(render_config(config, relative_to=tmp_path.resolve()))
        assert load_config(path) == config
    assert "\nclient_tls = false\n" in path.read_text()


def test_admin_client_api_switch() -> None:
    # On by default (admin tools reach the admin API through the client listener); a boolean.
    assert parse_config({}).admin.client_api is True
    assert parse_config({"admin": {"client_api": False}}).admin.client_api is False
    assert error_of({"admin": {"client_api": "no"}}) == (
        'admin.client_api: expected true or false, got "no"'
    )
    assert error_of({"admin": {"clientapi": True}}).startswith(
        'admin.clientapi: unknown key; did you mean "client_api"?'
    )


def test_metrics_are_off_by_default_and_never_on_the_federation_listener() -> None:
    assert parse_config({}).metrics.enabled is False
    on = parse_config({"metrics": {"enabled": True}}).metrics
    assert (on.enabled, on.address) == (True, "")  # on the client listener
    own = {"enabled": True, "address": "127.0.0.1:9092"}
    assert parse_config({"metrics": own}).metrics.address == "127.0.0.1:9092"
    assert error_of({"metrics": {"enabled": "yes"}}) == (
        'metrics.enabled: expected true or false, got "yes"'
    )
    assert error_of({"metrics": {"enabled": True, "address": "9092"}}).startswith(
        'metrics.address: "9092" is not'
    )
    assert error_of({"metrics": {"address": "127.0.0.1:9092"}}) == (
        'metrics.address: "127.0.0.1:9092" is set but metrics.enabled = false; set '
        'metrics.enabled = true to serve /metrics there, or metrics.address = ""'
    )
    # The client listener serving federation too would make /metrics public there.
    shared = {"listen": {"federation": ""}, "metrics": {"enabled": True}}
    assert error_of(shared).startswith(
        'metrics.address: the client listener also serves federation (listen.federation = ""),'
    )
    assert parse_config({**shared, "metrics": own}).metrics.address == "127.0.0.1:9092"
    # Without federation the client listener faces only clients (through its reverse proxy).
    alone = parse_config({**shared, "federation": {"enabled": False}}).metrics
    assert (alone.enabled, alone.address) == (True, "")
    taken = {"metrics": {"enabled": True, "address": "127.0.0.1:8448"}}
    assert error_of(taken).startswith(
        'metrics.address: "127.0.0.1:8448" is listen.federation\'s address;'
    )
