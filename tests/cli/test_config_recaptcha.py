"""Config of the registration captcha: [registration] recaptcha_* keys, their errors, the
template round trip, and the registration flows they lead to."""

from __future__ import annotations

import tomllib

import pytest

from dendrite_lite.config import ConfigError, parse_config
from dendrite_lite.config_template import render_config
from dendrite_lite.users.registration import registration_flows, registration_params

KEYS = {"recaptcha_public_key": "site", "recaptcha_private_key": "secret"}


def error_of(registration: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"registration": registration}, None)
    return str(info.value)


def test_defaults_ask_no_captcha_and_use_recaptcha_net() -> None:
    reg = parse_config({}).registration
    assert (reg.recaptcha_public_key, reg.recaptcha_private_key) == ("", "")
    assert reg.recaptcha_siteverify_api == "https://www.recaptcha.net/recaptcha/api/siteverify"
    assert reg.recaptcha_required is True


@pytest.mark.parametrize(
    ("registration", "message"),
    [
        ({"recaptcha_public_key": "site"},
         "registration.recaptcha_private_key: empty, but registration.recaptcha_public_key is "
         "set; a reCAPTCHA needs both the site key (public) and the secret key (private) from "
         "the reCAPTCHA admin console"),
        ({"recaptcha_private_key": "secret"},
         "registration.recaptcha_public_key: empty, but registration.recaptcha_private_key is "
         "set; a reCAPTCHA needs both the site key (public) and the secret key (private) from "
         "the reCAPTCHA admin console"),
        ({**KEYS, "recaptcha_siteverify_api": "ftp://google.com/x"},
         'registration.recaptcha_siteverify_api: "ftp://google.com/x" is not an http(s) URL '
         '(e.g. "https://www.recaptcha.net/recaptcha/api/siteverify")'),
        ({"recaptcha_public_key": 5}, "registration.recaptcha_public_key: expected a string, got 5"),
        ({"recaptcha_required": "yes"},
         'registration.recaptcha_required: expected true or false, got "yes"'),
        ({"recaptcha_secret": "x"},
         'registration.recaptcha_secret: unknown key; did you mean "recaptcha_required"? '
         "(valid keys in [registration]: mode, shared_secret, allow_guests, recaptcha_public_key, "
         "recaptcha_private_key, recaptcha_siteverify_api, recaptcha_required, email)"),
    ],
)
def test_errors_name_the_key_and_the_problem(registration: dict, message: str) -> None:
    assert error_of(registration) == message


def test_template_round_trips_the_keys() -> None:
    config = parse_config({"registration": {"mode": "open", **KEYS, "recaptcha_required": False}})
    text = render_config(config)
    assert "reCAPTCHA v2 site key" in text
    assert parse_config(tomllib.loads(text)).registration == config.registration


@pytest.mark.parametrize(
    ("registration", "flows", "params"),
    [
        ({"mode": "open"}, [("m.login.dummy",)], {}),
        ({"mode": "open", **KEYS}, [("m.login.recaptcha", "m.login.dummy")],
         {"m.login.recaptcha": {"public_key": "site"}}),
        ({"mode": "open", **KEYS, "recaptcha_required": False},
         [("m.login.dummy",), ("m.login.recaptcha", "m.login.dummy")],
         {"m.login.recaptcha": {"public_key": "site"}}),
        # A registration token is the admin's invitation: no captcha on top (unlike Synapse).
        ({"mode": "token", **KEYS}, [("m.login.registration_token", "m.login.dummy")], {}),
    ],
)
def test_flows(registration: dict, flows: list, params: dict) -> None:
    config = parse_config({"registration": registration})
    assert registration_flows(config) == flows
    assert registration_params(config) == params
