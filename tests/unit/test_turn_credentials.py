"""[turn] config checks and the credentials /voip/turnServer hands out (turn_credentials.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from dendrite_lite.config import ConfigError, TurnConfig, parse_config
from dendrite_lite.turn_credentials import rest_api_password, turn_credentials

URIS = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]


def error_of(turn: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config({"turn": turn}, None)
    return str(info.value)


def test_rest_api_password_is_coturns_hmac_sha1() -> None:
    # coturn's README.turnserver (--use-auth-secret): password = base64(hmac-sha1(secret, username)).
    username = "1700000000:@alice:example.org"
    expected = base64.b64encode(hmac.new(b"north", username.encode(), hashlib.sha1).digest()).decode()
    assert rest_api_password("north", username) == expected
    assert rest_api_password("south", username) != expected


def test_shared_secret_credentials_expire_after_the_lifetime() -> None:
    turn = TurnConfig(uris=tuple(URIS), shared_secret="north", user_lifetime_s=3600)
    body = turn_credentials(turn, "@alice:example.org", 1_700_000_000.7)
    assert body == {
        "username": "1700003600:@alice:example.org",
        "password": rest_api_password("north", "1700003600:@alice:example.org"),
        "uris": URIS,
        "ttl": 3600,
    }


def test_static_credentials_are_the_same_for_everyone() -> None:
    turn = TurnConfig(uris=(URIS[0],), username="family", password="hunter2")
    assert turn_credentials(turn, "@alice:example.org", 0) == turn_credentials(turn, "@bob:example.org", 99)
    assert turn_credentials(turn, "@alice:example.org", 0)["username"] == "family"


def test_no_uris_means_no_credentials() -> None:
    assert turn_credentials(TurnConfig(), "@alice:example.org", 0) is None


def test_config_accepts_a_shared_secret_setup() -> None:
    config = parse_config({"turn": {"uris": URIS, "shared_secret": "north", "user_lifetime_s": 600}}, None)
    assert config.turn.uris == tuple(URIS) and config.turn.user_lifetime_s == 600


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ({"uris": ["https://turn.example.org"]}, 'turn.uris[0]: "https://turn.example.org" is not a TURN URI'),
        ({"uris": "turn:x"}, "turn.uris: expected a list of TURN URIs"),
        ({"uris": URIS}, "turn.shared_secret: empty; a TURN server needs credentials"),
        ({"uris": URIS, "shared_secret": "s", "username": "u", "password": "p"}, "not both"),
        ({"uris": URIS, "username": "u"}, "turn.password: empty"),
        ({"uris": URIS, "password": "p"}, "turn.username: empty"),
        ({"shared_secret": "s"}, "turn.uris: empty, but credentials are set"),
        ({"uris": URIS, "shared_secret": "s", "user_lifetime_s": 5}, "turn.user_lifetime_s"),
        ({"uri": URIS}, "turn.uri"),
    ],
)
def test_config_errors_name_the_key(turn: dict, message: str) -> None:
    assert message in error_of(turn)
