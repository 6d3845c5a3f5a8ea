"""[email] and registration.email: defaults (email off), every error names the key and what is
wrong, and the template writes the keys back."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.config import ConfigError, parse_config
from dendrite_lite.config_template import render_config

SMTP = {"smtp_host": "smtp.example.org"}


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(data)
    return str(e.value)


def test_defaults_leave_email_off() -> None:
    config = parse_config({})
    assert not config.email.enabled
    assert config.registration.email == "optional"
    assert (config.email.smtp_tls, config.email.port) == ("starttls", 587)


@pytest.mark.parametrize(
    ("tls", "port"), [("none", 25), ("starttls", 587), ("tls", 465)]
)
def test_the_port_follows_the_tls_mode_unless_given(tls: str, port: int) -> None:
    assert parse_config({"email": {**SMTP, "smtp_tls": tls}}).email.port == port
    assert parse_config({"email": {**SMTP, "smtp_tls": tls, "smtp_port": 2525}}).email.port == 2525


def test_a_full_section_loads() -> None:
    email = parse_config({"email": {
        **SMTP, "smtp_tls": "tls", "smtp_user": "matrix", "smtp_password": "pw",
        "from_address": "Family Matrix <matrix@example.org>",
    }, "registration": {"email": "required"}}).email
    assert email.enabled and email.from_address == "Family Matrix <matrix@example.org>"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"registration": {"email": "required"}},
         'registration.email: "required" needs outgoing email, but email.smtp_host is empty; '
         'set up [email], or registration.email = "optional" or "off"'),
        ({"registration": {"email": "yes"}},
         'registration.email: "yes" is not one of: off, optional, required'),
        ({"email": {"smtp_user": "u", "smtp_password": "p"}},
         "email.smtp_host: empty, but email.smtp_user is set; name the SMTP server that sends "
         'this server\'s mail (e.g. "smtp.example.org"), or remove the [email] keys'),
        ({"email": {**SMTP, "smtp_user": "u"}},
         "email.smtp_password: empty, but email.smtp_user is set; a login needs both"),
        ({"email": {**SMTP, "smtp_password": "p"}},
         "email.smtp_user: empty, but email.smtp_password is set; a login needs both"),
        ({"email": {**SMTP, "smtp_user": "u", "smtp_password": "p", "smtp_tls": "none"}},
         'email.smtp_tls: "none" would send smtp_password unencrypted to "smtp.example.org"; '
         'use "starttls" (usually port 587) or "tls" (port 465)'),
        ({"email": {"smtp_host": "smtp.example.org:587"}},
         'email.smtp_host: "smtp.example.org:587" is not a host name or IP address (e.g. '
         '"smtp.example.org"; the port goes in its own key)'),
        ({"email": {**SMTP, "smtp_port": 70000}},
         "email.smtp_port: 70000 is out of range (0-65535)"),
        ({"email": {**SMTP, "smtp_tls": "ssl"}},
         'email.smtp_tls: "ssl" is not one of: none, starttls, tls'),
        ({"email": {**SMTP, "from_address": "Matrix <nobody>"}},
         'email.from_address: "Matrix <nobody>" is not an email address (e.g. '
         '"matrix@example.org" or "Family Matrix <matrix@example.org>")'),
        ({"email": {**SMTP, "smtp_server": "x"}},
         'email.smtp_server: unknown key; did you mean "smtp_user"? (valid keys in [email]: '
         "smtp_host, smtp_port, smtp_tls, smtp_user, smtp_password, from_address, ca_file, "
         "notif_enabled, notif_delay_minutes, notif_throttle_minutes, client_base_url)"),
        ({"email": {**SMTP, "notif_delay_minutes": -1}},
         "email.notif_delay_minutes: -1 is out of range (0 or more; 0 turns this limit off)"),
        ({"email": {**SMTP, "notif_throttle_minutes": "1h"}},
         'email.notif_throttle_minutes: expected a number, got "1h"'),
        ({"email": {**SMTP, "client_base_url": "app.element.io"}},
         'email.client_base_url: "app.element.io" is not an http(s) URL (e.g. '
         '"https://app.element.io")'),
        ({"email": {**SMTP, "notif_enabled": "yes"}},
         'email.notif_enabled: expected true or false, got "yes"'),
    ],
)
def test_errors_name_the_key_and_the_problem(data: dict[str, Any], message: str) -> None:
    assert error_of(data) == message


def test_a_plain_login_to_a_relay_on_this_machine_is_allowed() -> None:
    for host in ("127.0.0.1", "localhost", "[::1]"):
        parse_config({"email": {
            "smtp_host": host, "smtp_tls": "none", "smtp_user": "u", "smtp_password": "p",
        }})


def test_template_round_trips_the_keys() -> None:
    config = parse_config({
        "email": {**SMTP, "smtp_user": "u", "smtp_password": "p", "from_address": "m@example.org"},
        "registration": {"email": "required"},
    })
    text = render_config(config)
    assert "[email]" in text and "mail provider's SMTP server" in text
    import tomllib

    assert parse_config(tomllib.loads(text)) == config


def test_email_notifications_follow_the_email_setup() -> None:
    assert not parse_config({}).email.notifications  # no [email]: no email pushers
    email = parse_config({"email": SMTP}).email
    assert email.notifications
    assert (email.notif_delay_minutes, email.notif_throttle_minutes) == (10.0, 60.0)
    assert email.client_base_url == "https://app.element.io"
    off = parse_config({"email": {**SMTP, "notif_enabled": False}}).email
    assert off.enabled and not off.notifications
    custom = parse_config({"email": {
        **SMTP, "notif_delay_minutes": 2, "notif_throttle_minutes": 0.5,
        "client_base_url": "https://chat.example.org/",
    }}).email
    assert (custom.notif_delay_minutes, custom.notif_throttle_minutes) == (2.0, 0.5)
    assert custom.client_base_url == "https://chat.example.org"
    text = render_config(parse_config({"email": {**SMTP, "notif_delay_minutes": 2}}))
    assert "notif_delay_minutes = 2.0" in text and "client_base_url" in text
