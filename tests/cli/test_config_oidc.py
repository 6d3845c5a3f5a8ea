"""[[oidc_providers]] in the config file: defaults, relative paths, and each mistake reported
with the key that has it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from dendrite_lite.config import ConfigError, load_config, parse_config
from dendrite_lite.config_template import render_config

BASE = {"idp_id": "authelia", "idp_name": "Authelia", "issuer": "https://auth.example.org",
        "client_id": "matrix"}


def _parse(*providers: dict[str, Any], **sections: Any) -> Any:
    return parse_config({"oidc_providers": list(providers), **sections})


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    (provider,) = _parse(BASE).oidc_providers
    assert provider.scopes == ("openid", "profile") and provider.discovery and provider.pkce
    assert provider.localpart_claim == "preferred_username" and provider.displayname_claim == "name"
    assert provider.auto_register and not provider.allow_existing_users
    assert _parse().oidc_providers == ()
    path = tmp_path / "dendrite-lite.toml"
    path.write_text('[[oidc_providers]]\nidp_id = "a"\nidp_name = "A"\nissuer = "https://a.example"\n'
                    'client_id = "c"\nclient_secret_file = "secret.txt"\nca_file = "ca.pem"\n'
                    'required_claims = { groups = "family" }\n')
    (provider,) = load_config(path).oidc_providers
    assert provider.client_secret_file == tmp_path / "secret.txt"
    assert provider.ca_file == tmp_path / "ca.pem"
    assert provider.required_claims == {"groups": "family"}


@pytest.mark.parametrize(("change", "message"), [
    ({"idp_id": "has space"}, "oidc_providers[0].idp_id: \"has space\" is not an identity provider id"),
    ({"idp_id": ""}, "oidc_providers[0].idp_id: \"\" is not an identity provider id"),
    ({"issuer": "auth.example.org"}, "oidc_providers[0].issuer: \"auth.example.org\" is not an http(s) URL"),
    ({"client_id": ""}, "oidc_providers[0].client_id: must not be empty"),
    ({"scopes": ["profile"]}, "oidc_providers[0].scopes: must include \"openid\""),
    ({"scopes": ["open id"]}, "oidc_providers[0].scopes[0]: \"open id\" is not a scope"),
    ({"idp_icon": "https://x/y.png"}, "oidc_providers[0].idp_icon: \"https://x/y.png\" is not an mxc:// URI"),
    ({"client_secret": "s", "client_secret_file": "f"}, "oidc_providers[0].client_secret_file: set beside"),
    ({"discovery": False}, "oidc_providers[0].authorization_endpoint: required when discovery = false"),
    ({"required_claims": {"groups": 1}}, "oidc_providers[0].required_claims.groups: expected a string"),
    ({"issuer": "http://auth.example.org"}, 'oidc_providers[0].issuer: "http://auth.example.org" must be an https:// URL'),
    ({"token_endpoint": "http://a/t"}, 'oidc_providers[0].token_endpoint: "http://a/t" must be an https:// URL'),
    ({"clientid": "x"}, 'oidc_providers[0].clientid: unknown key; did you mean "client_id"?'),
])
def test_errors_name_the_key(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _parse({**BASE, **change})
    assert str(e.value).startswith(message), str(e.value)


def test_missing_keys_and_clashing_ids() -> None:
    with pytest.raises(ConfigError, match=r"oidc_providers\[0\]\.issuer: required"):
        _parse({k: v for k, v in BASE.items() if k != "issuer"})
    with pytest.raises(ConfigError, match=r'oidc_providers\[1\]\.idp_id: "authelia" is used twice'):
        _parse(BASE, BASE)
    with pytest.raises(ConfigError, match=r'oidc_providers\[0\]\.idp_id: "cas" is used by \[cas\]'):
        _parse({**BASE, "idp_id": "cas"}, cas={"server_url": "https://cas.example.org/cas"})
    with pytest.raises(ConfigError, match=r"oidc_providers: expected an array of tables"):
        parse_config({"oidc_providers": {"idp_id": "x"}})
    with pytest.raises(ConfigError, match=r"oidc_providers\[0\]: expected a table"):
        parse_config({"oidc_providers": ["x"]})


def test_the_template_shows_an_example_and_round_trips_providers() -> None:
    text = render_config(parse_config({}))
    assert "# [[oidc_providers]]\n# idp_id = " in text and "_dendrite_lite/client/oidc/callback" in text
    assert tomllib.loads(text).get("oidc_providers") is None  # only commented out
    config = _parse({**BASE, "required_claims": {"groups": "family"}, "scopes": ["openid", "email"]},
                    {**BASE, "idp_id": "google", "client_secret": "s"})
    assert parse_config(tomllib.loads(render_config(config))).oidc_providers == config.oidc_providers
