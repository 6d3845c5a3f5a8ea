"""The config rules tls.mode = "acme" adds (config._check_acme): each error names the key."""

from __future__ import annotations

from typing import Any

import pytest

from dendrite_lite.config import ConfigError, parse_config


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, None)
    return str(info.value)


def test_acme_needs_the_terms_agreed() -> None:
    assert error_of({"tls": {"mode": "acme"}}) == (
        'tls.acme_agree_tos: must be true when tls.mode = "acme": set it to agree to the terms of'
        " service of the certificate authority at tls.acme_directory"
        ' ("https://acme-v02.api.letsencrypt.org/directory"; Let\'s Encrypt\'s:'
        " https://letsencrypt.org/repository/)"
    )
    config = parse_config({"tls": {"mode": "acme", "acme_agree_tos": True}})
    assert config.tls.acme_agree_tos


def test_http_01_needs_the_port_80_listener() -> None:
    assert error_of({"listen": {"acme_http": ""}, "tls": {
        "mode": "acme", "acme_agree_tos": True, "acme_challenge": "http-01"}}) == (
        'tls.acme_challenge: "http-01" needs the port-80 listener, but listen.acme_http = "";'
        ' set listen.acme_http = "0.0.0.0:80", or tls.acme_challenge = "tls-alpn-01"'
    )


@pytest.mark.parametrize("challenge", ["auto", "tls-alpn-01"])
def test_tls_alpn_01_needs_a_tls_listener(challenge: str) -> None:
    plain = {"client_tls": False, "federation_tls": False, "acme_http": ""}
    message = error_of({"listen": plain, "tls": {
        "mode": "acme", "acme_agree_tos": True, "acme_challenge": challenge}})
    assert message.startswith('tls.acme_challenge: "tls-alpn-01" (what "auto" means with')
    assert "listen.client_tls and listen.federation_tls are both false" in message
    # With the port-80 listener, auto is http-01 and plain listeners are fine.
    parse_config({"listen": {**plain, "acme_http": "0.0.0.0:80"},
                  "tls": {"mode": "acme", "acme_agree_tos": True}})
