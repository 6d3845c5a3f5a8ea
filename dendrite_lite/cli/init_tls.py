"""`dendrite-lite init`'s HTTPS default and the ACME facts it asks about.

The default is ACME when it can work without help: the certificate's names resolve to this
machine's public IP and the HTTPS port is free. A port that is in use has a web server on it,
which should then be the reverse proxy ("proxy"); a name pointing elsewhere cannot pass the
CA's challenge. A port a non-root user may not bind (below 1024) counts as free: the service
gets the right from systemd (local_ports.PRIVILEGE_HINT). The challenge is HTTP-01 when port 80
is usable, else TLS-ALPN-01 on the HTTPS port with the port-80 listener off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dendrite_lite.delegation.local_ports import PortState
from dendrite_lite.delegation.name_checks import AddressCheck

__all__ = [
    "LETS_ENCRYPT_TERMS",
    "STAGING_DIRECTORY",
    "TlsDefault",
    "acme_challenge",
    "fetch_terms_url",
    "tls_default",
]

STAGING_DIRECTORY = "https://acme-staging-v02.api.letsencrypt.org/directory"
# Shown when the directory cannot be asked (offline, or it is down): Let's Encrypt's own page.
LETS_ENCRYPT_TERMS = "https://letsencrypt.org/repository/"
TERMS_TIMEOUT_S = 5


@dataclass(frozen=True)
class TlsDefault:
    mode: str
    reason: str


def tls_default(
    names: Sequence[AddressCheck], https_port: tuple[str, PortState], public_ip: str
) -> TlsDefault:
    """`names`: the checks of the certificate's names; `https_port`: (address, its state)."""
    address, state = https_port
    if not public_ip:
        return TlsDefault("proxy", "this machine's public IP is unknown, so ACME's checks cannot be foreseen")
    elsewhere = [n.host for n in names if not n.points_here]
    if elsewhere:
        one = len(elsewhere) == 1
        return TlsDefault(
            "proxy", f"{', '.join(elsewhere)} {'does' if one else 'do'} not resolve to {public_ip}"
            f" yet, so Let's Encrypt cannot check {'it' if one else 'them'} here (acme works once"
            f" {'it does' if one else 'they do'})",
        )
    if state is PortState.IN_USE:
        return TlsDefault(
            "proxy", f"{address} is in use, probably by a web server: let it be the reverse proxy"
        )
    if not state.usable:
        return TlsDefault("proxy", f"{address} is {state.value}")
    verb = "resolves" if len(names) == 1 else "resolve"
    return TlsDefault(
        "acme", f"{', '.join(n.host for n in names)} {verb} here and {address} is free"
    )


def acme_challenge(http_port: tuple[str, PortState]) -> tuple[str, str]:
    """(challenge, listen.acme_http) for the state of the port-80 address."""
    address, state = http_port
    if state.usable:
        return "http-01", address
    # Port 80 is someone else's: no listener of ours there, the CA comes to port 443 instead.
    return "tls-alpn-01", ""


def fetch_terms_url(directory: str, ca_file: str | None = None) -> tuple[str | None, str | None]:
    """(terms of service URL, None) from the ACME directory's meta, or (None, why not)."""
    import josepy.errors
    import requests
    from acme import client, errors

    net = client.ClientNetwork(None, verify_ssl=ca_file or True, timeout=TERMS_TIMEOUT_S)
    try:
        meta = client.ClientV2.get_directory(directory, net).meta
    except requests.ConnectionError:
        return None, f"cannot read the directory {directory}: no connection"
    except requests.Timeout:
        return None, f"cannot read the directory {directory}: no answer in {TERMS_TIMEOUT_S} s"
    except (requests.RequestException, errors.Error, josepy.errors.Error, ValueError) as e:
        return None, f"cannot read the directory {directory}: {e}"
    if not meta.terms_of_service:
        return None, f"the directory {directory} names no terms of service"
    return str(meta.terms_of_service), None
