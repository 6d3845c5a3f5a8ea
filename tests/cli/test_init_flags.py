"""`dendrite-lite init` from flags and through typer's test runner: the written config, the
messages, the exit codes. The interactive runs get fake probes (no DNS, no public IP lookup,
ports free): the live checks themselves are tested through a pseudo-terminal in test_init_pty.py.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from signedjson.key import read_signing_keys

from dendrite_lite.config import Config, load_config
from tests.cli.init_fakes import TERMS_URL, fake_probes
from tests.cli.test_cli import init_args, invoke

# --- init ------------------------------------------------------------------------------------


def test_init_non_interactive_writes_a_config_that_config_check_accepts(tmp_path: Path) -> None:
    result = invoke(*init_args(tmp_path, "--registration", "token", "--public-baseurl",
                               "https://matrix.example.org"))
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert config.server.server_name == "example.org"
    assert config.public_baseurl == "https://matrix.example.org/"
    assert config.server.data_dir == (tmp_path / "data").resolve()
    assert config.registration.mode == "token"
    assert config.tls.mode == "proxy"
    assert config.listen.client == "127.0.0.1:8008"
    # The data dir is next to the config, so the file says so relatively and stays movable.
    assert 'data_dir = "./data"' in (tmp_path / "dendrite-lite.toml").read_text()

    check = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert check.exit_code == 0, check.output
    lines = check.stdout.splitlines()
    assert lines[0] == f"OK: {(tmp_path / 'dendrite-lite.toml').resolve()}"
    assert "  server name:  example.org" in lines
    assert "  client API:   127.0.0.1:8008 (plain HTTP)" in lines
    assert "  federation:   127.0.0.1:8448 (plain HTTP)" in lines
    assert f"  database:     {config.database_path} (synchronous=FULL)" in lines
    assert "  TLS:          proxy" in lines
    assert "  registration: token" in lines
    assert any(line.startswith("  signing key:  ed25519:a_") for line in lines)


def test_init_key_and_data_dir_permissions(tmp_path: Path) -> None:
    assert invoke(*init_args(tmp_path)).exit_code == 0
    key_path = tmp_path / "data" / "signing.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "dendrite-lite.toml").stat().st_mode) == 0o600
    with open(key_path) as f:
        keys = read_signing_keys(f)
    assert len(keys) == 1
    assert keys[0].alg == "ed25519"
    assert keys[0].version.startswith("a_")


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert invoke(*init_args(tmp_path)).exit_code == 0
    config_path = tmp_path / "dendrite-lite.toml"
    key_path = tmp_path / "data" / "signing.key"
    old_config, old_key = config_path.read_text(), key_path.read_text()

    again = invoke(*init_args(tmp_path, "--registration", "open"))
    assert again.exit_code == 2
    assert f"error: {config_path} already exists; not overwriting it" in again.stderr
    assert "--force" in again.stderr
    assert (config_path.read_text(), key_path.read_text()) == (old_config, old_key)

    # A key left behind without its config is protected too.
    config_path.unlink()
    again = invoke(*init_args(tmp_path))
    assert again.exit_code == 2
    assert f"error: {key_path} already exists" in again.stderr
    assert not config_path.exists()
    assert key_path.read_text() == old_key

    forced = invoke(*init_args(tmp_path, "--registration", "open", "--force"))
    assert forced.exit_code == 0, forced.output
    assert load_config(config_path).registration.mode == "open"
    assert key_path.read_text() != old_key
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_init_needs_a_server_name_and_valid_answers(tmp_path: Path) -> None:
    result = invoke("init", "--non-interactive", "--config", str(tmp_path / "c.toml"))
    assert result.exit_code == 2
    assert "error: --server-name is required with --non-interactive" in result.stderr

    result = invoke(*init_args(tmp_path)[:-4], "--server-name", "Ex ample")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        'error: server.server_name: "Ex ample" is not a valid server name'
    )
    result = invoke(*init_args(tmp_path, "--tls-mode", "ftp"))
    assert result.exit_code == 2
    assert "error: --tls-mode must be one of proxy, acme, files, not 'ftp'" in result.stderr
    result = invoke(*init_args(tmp_path, "--tls-mode", "files"))
    assert result.exit_code == 2
    assert 'error: tls.cert_path: required when tls.mode = "files"' in result.stderr
    result = invoke(*init_args(tmp_path, "--listen-client", "0.0.0.0:80800"))
    assert result.exit_code == 2
    assert 'listen.client: "0.0.0.0:80800" is not a valid port (1-65535)' in result.stderr
    assert not (tmp_path / "dendrite-lite.toml").exists()
    assert not (tmp_path / "data").exists()


def test_init_creates_the_first_admin_through_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dendrite_lite.cli import accounts

    calls: list[tuple[Config, str, str]] = []

    def fake_create_first_admin(config: Config, localpart: str, password: str) -> str:
        calls.append((config, localpart, password))
        return f"@{localpart}:{config.server.server_name}"

    monkeypatch.setattr(accounts, "create_first_admin", fake_create_first_admin)
    password_file = tmp_path / "pw"
    password_file.write_text("correct horse\n")  # the newline `echo` adds is not part of it
    result = invoke(*init_args(tmp_path, "--admin-user", "alice",
                               "--admin-password-file", str(password_file)))
    assert result.exit_code == 0, result.output
    assert "Created the admin account @alice:example.org." in result.stdout
    [(config, localpart, password)] = calls
    assert (localpart, password) == ("alice", "correct horse")
    assert config == load_config(tmp_path / "dendrite-lite.toml")

    # Without a password file there is nobody to ask in --non-interactive mode.
    result = invoke(*init_args(tmp_path / "b", "--admin-user", "alice"))
    assert result.exit_code == 2
    assert "--admin-user needs --admin-password-file" in result.stderr
    result = invoke(*init_args(tmp_path / "c", "--admin-user", "al ice"))
    assert result.exit_code == 2
    assert "error: --admin-user: 'al ice' is not a valid user name" in result.stderr
    assert not (tmp_path / "c").exists()


def test_init_creates_a_real_admin_account(tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("hunter2\n")
    args = init_args(tmp_path, "--admin-user", "Root", "--admin-password-file", str(password_file))
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "Created the admin account @root:example.org." in result.stdout
    assert (tmp_path / "data" / "homeserver.db").exists()

    # The account is in the database: a second init (forced) cannot create it again, and says
    # how to go on, without a traceback.
    again = invoke(*args, "--force")
    assert again.exit_code == 1
    assert "error: the admin account 'root' was not created:" in again.stderr
    assert "dendrite-lite create-account NAME --admin" in again.stderr
    assert again.exception is None or isinstance(again.exception, SystemExit)


def test_init_interactive_asks_again_after_a_bad_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dendrite_lite.cli import accounts

    created: list[tuple[str, str]] = []
    monkeypatch.setattr(
        accounts, "create_first_admin",
        lambda config, localpart, password: created.append((localpart, password)) or "@x:y",
    )
    monkeypatch.chdir(tmp_path)
    fake_probes(monkeypatch)
    answers = "\n".join([
        "",                  # public IP: unknown
        "Ex ample",          # rejected: asked again
        "example.org",
        "sideways",          # rejected delegation
        "direct",
        "",                  # public URL: default https://example.org/
        "srv",               # data dir, relative to where init runs
        "acme",              # not the suggestion (proxy: the name resolves nowhere yet)
        "admin@example.org",
        "n",                 # not the staging CA
        "y",                 # the CA's terms of service agreed
        "",                  # no reverse proxy for the client API (the default)
        "sometimes",         # rejected registration mode
        "open",
        "y",
        "root",
        "pw1", "pw1",
    ]) + "\n"
    result = invoke("init", input=answers)
    assert result.exit_code == 0, result.output
    assert 'server.server_name: "Ex ample" is not a valid server name' in result.stderr
    assert 'registration.mode: "sometimes" is not one of: closed, open, token' in result.stderr
    assert "'sideways' is not one of: direct, well-known, srv" in result.stderr
    assert f"The certificate authority's terms of service: {TERMS_URL}" in result.stdout
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert config.server.server_name == "example.org"
    assert config.public_baseurl == "https://example.org/"
    assert config.server.data_dir == tmp_path.resolve() / "srv"
    assert config.tls.mode == "acme"
    assert config.tls.acme_email == "admin@example.org"
    assert (config.tls.acme_agree_tos, config.tls.acme_challenge) == (True, "http-01")
    assert config.tls.acme_names == ()  # the server name
    assert config.listen.acme_http == "0.0.0.0:80"
    assert config.server.public_ip == ""
    # With its own TLS the server faces the internet directly.
    assert (config.listen.client, config.listen.federation) == ("0.0.0.0:443", "0.0.0.0:8448")
    assert config.registration.mode == "open"
    assert created == [("root", "pw1")]
    assert (tmp_path / "srv" / "signing.key").exists()


def test_init_with_token_registration_says_how_to_make_a_token(tmp_path: Path) -> None:
    result = invoke(*init_args(tmp_path, "--registration", "token"))
    assert result.exit_code == 0, result.output
    config = tmp_path / "dendrite-lite.toml"
    assert f"dendrite-lite registration-token create --config {config}" in result.stdout
    closed = invoke(*init_args(tmp_path / "closed"))
    assert closed.exit_code == 0, closed.output
    assert "registration-token" not in closed.stdout


def test_init_refuses_tls_files_that_do_not_exist(tmp_path: Path) -> None:
    # A config naming a missing certificate fails `config check` and the start: init says so
    # as it asks, like it does for names and URLs (issue 11).
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    files = ("--tls-mode", "files", "--tls-cert", str(cert), "--tls-key", str(key))
    result = invoke(*init_args(tmp_path, *files))
    assert result.exit_code == 2
    assert f"error: tls.cert_path: {cert} does not exist" in result.stderr
    assert not (tmp_path / "dendrite-lite.toml").exists()
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    result = invoke(*init_args(tmp_path, *files))
    assert result.exit_code == 2
    assert f"error: tls.key_path: {key} does not exist" in result.stderr
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    result = invoke(*init_args(tmp_path, *files))
    assert result.exit_code == 0, result.output
    check = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert check.exit_code == 0, check.output


def test_init_interactive_asks_again_for_a_missing_tls_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fullchain.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "privkey.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "certs").mkdir()
    fake_probes(monkeypatch)
    answers = "\n".join([
        "", "example.org", "direct", "", "data",
        "files",
        "fulchain.pem",      # a typo: asked again
        "fullchain.pem",
        "certs",             # a directory: asked again
        "privkey.pem",
        "",                  # no reverse proxy for the client API (the default)
        "closed",
        "n",
    ]) + "\n"
    result = invoke("init", input=answers)
    assert result.exit_code == 0, result.output
    assert "tls.cert_path: fulchain.pem does not exist" in result.stderr
    assert "tls.key_path: certs is not a file" in result.stderr
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert config.tls.cert_path == tmp_path.resolve() / "fullchain.pem"
    assert config.tls.key_path == tmp_path.resolve() / "privkey.pem"
    assert invoke("config", "check", "--config", "dendrite-lite.toml").exit_code == 0


# --- init: TLS per listener (issue 12 item 2) -------------------------------------------------


def _files_flags(tmp_path: Path) -> tuple[str, ...]:
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    return ("--tls-mode", "files", "--tls-cert", str(tmp_path / "cert.pem"),
            "--tls-key", str(tmp_path / "key.pem"))


def test_init_client_behind_proxy_gives_the_appliance_layout(tmp_path: Path) -> None:
    result = invoke(*init_args(tmp_path, *_files_flags(tmp_path), "--client-behind-proxy"))
    assert result.exit_code == 0, result.output
    assert "Point your reverse proxy's client API at http://127.0.0.1:8008" in result.stdout
    path = tmp_path / "dendrite-lite.toml"
    config = load_config(path)
    assert (config.listen.client, config.listen.federation) == ("127.0.0.1:8008", "0.0.0.0:8448")
    assert (config.listen.client_tls, config.listen.federation_tls) == (False, True)
    text = path.read_text()
    assert "\nclient_tls = false\n" in text and "\nfederation_tls = true\n" in text
    check = invoke("config", "check", "--config", str(path))
    assert check.exit_code == 0, check.output
    assert "  client API:   127.0.0.1:8008 (plain HTTP)" in check.stdout.splitlines()
    assert "  federation:   0.0.0.0:8448 (HTTPS)" in check.stdout.splitlines()


@pytest.mark.parametrize("flag", [(), ("--client-direct",)])
def test_init_with_a_certificate_and_no_proxy_serves_tls_on_both(
    tmp_path: Path, flag: tuple[str, ...]
) -> None:
    result = invoke(*init_args(tmp_path, *_files_flags(tmp_path), *flag))
    assert result.exit_code == 0, result.output
    assert "reverse proxy" not in result.stdout
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.listen.client, config.listen.federation) == ("0.0.0.0:443", "0.0.0.0:8448")
    # Not written: they follow tls.mode, as every config before the switches did.
    assert (config.listen.client_tls, config.listen.federation_tls) == (None, None)
    assert (config.client_tls, config.federation_tls) == (True, True)
    check = invoke("config", "check", "--config", str(tmp_path / "dendrite-lite.toml"))
    assert "  client API:   0.0.0.0:443 (HTTPS)" in check.stdout.splitlines()


def test_init_behind_proxy_keeps_explicit_addresses_and_no_federation_listener(
    tmp_path: Path,
) -> None:
    result = invoke(*init_args(tmp_path, *_files_flags(tmp_path), "--client-behind-proxy",
                               "--listen-client", "127.0.0.1:9000", "--listen-federation", ""))
    assert result.exit_code == 0, result.output
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.listen.client, config.listen.federation) == ("127.0.0.1:9000", "")
    # Federation goes through the proxy on the client listener: nothing serves the certificate.
    assert (config.listen.client_tls, config.listen.federation_tls) == (False, None)
    assert (config.client_tls, config.federation_tls) == (False, False)


def test_init_proxy_mode_and_the_client_question(tmp_path: Path) -> None:
    result = invoke(*init_args(tmp_path, "--client-behind-proxy"))
    assert result.exit_code == 0, result.output  # redundant with proxy mode, and fine
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.client_tls, config.federation_tls) == (False, False)
    assert (config.listen.client_tls, config.listen.federation_tls) == (None, None)
    result = invoke(*init_args(tmp_path / "direct", "--client-direct"))
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --client-direct needs --tls-mode acme or files (with --tls-mode proxy a reverse"
        " proxy does HTTPS for both listeners)\n"
    )


def test_init_interactive_asks_about_the_client_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake_probes(monkeypatch)
    answers = "\n".join([
        "", "example.org", "direct", "", "data",
        "acme",
        "",                  # no email
        "",                  # not the staging CA (the default)
        "y",                 # the CA's terms of service agreed
        "y",                 # a reverse proxy serves the client API
        "closed",
        "n",
    ]) + "\n"
    result = invoke("init", input=answers)
    assert result.exit_code == 0, result.output
    assert "Does a reverse proxy on this machine (Caddy, nginx) already serve" in result.stdout
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert config.tls.mode == "acme"
    assert (config.listen.client, config.listen.federation) == ("127.0.0.1:8008", "0.0.0.0:8448")
    assert (config.client_tls, config.federation_tls) == (False, True)


def test_init_interactive_does_not_ask_about_the_proxy_in_proxy_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fake_probes(monkeypatch)
    answers = "\n".join(["", "example.org", "direct", "", "data", "proxy", "closed", "n"]) + "\n"
    result = invoke("init", input=answers)
    assert result.exit_code == 0, result.output
    assert "Does a reverse proxy" not in result.stdout
    config = load_config(tmp_path / "dendrite-lite.toml")
    assert (config.client_tls, config.federation_tls) == (False, False)
