"""Whether the TURN servers of [turn] relay calls for the credentials this server hands out, for
the configured server: per `turn.uris` entry, the host resolves (the doctor's resolver), a TCP
or TLS connection opens for `?transport=tcp` and `turns:`, and the server grants a TURN
allocation (RFC 8656) to credentials made by turn_credentials() exactly as GET
/voip/turnServer makes them, so a wrong shared secret shows as the 401 a caller's client gets.

The allocation is aioice's TURN client (the ICE library of aiortc) driven directly, so the
connection goes to the address the doctor resolved while TLS still checks the certificate
for the URI's host; it is deleted again at once. The relay ports (coturn's min-port..max-port)
carry the media and are not reached by this check.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from typing import Any

from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol

from dendrite_lite.config import TurnConfig
from dendrite_lite.delegation.doctor.findings import Finding, Status
from dendrite_lite.delegation.doctor.network import Address, DoctorNetwork
from dendrite_lite.delegation.doctor.ports import connect_error
from dendrite_lite.turn_credentials import turn_credentials

__all__ = ["TURN_TIMEOUT_S", "TurnUri", "parse_turn_uri", "turn_findings"]

AREA = "calls"
# Long enough for aioice's retransmissions (0.5, 1, 2 s) to reach a lossy server over UDP,
# short enough that a firewall dropping packets does not hold the doctor up.
TURN_TIMEOUT_S = 5.0
README_SECTION = 'README, "Voice and video calls (TURN)"'
_DEFAULT_PORTS = {"turn": 3478, "turns": 5349}  # RFC 7065 §3
_DOCTOR_USER = "@dendrite-lite-doctor"


@dataclass(frozen=True, slots=True)
class TurnUri:
    secure: bool  # turns: TLS over TCP
    host: str  # without brackets
    port: int
    transport: str  # "udp" or "tcp"

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_turn_uri(uri: str) -> TurnUri:
    """RFC 7065's turn:/turns: URI; ValueError naming what is wrong."""
    scheme, sep, rest = uri.partition(":")
    if not sep or scheme.lower() not in _DEFAULT_PORTS:
        raise ValueError("it does not start with turn: or turns:")
    secure = scheme.lower() == "turns"
    rest, _, query = rest.partition("?")
    transport = "tcp" if secure else "udp"
    for param in filter(None, query.split("&")):
        name, _, value = param.partition("=")
        if name != "transport" or value.lower() not in ("udp", "tcp"):
            raise ValueError(f"unknown parameter {param!r} (only transport=udp or transport=tcp)")
        transport = value.lower()
    if secure and transport == "udp":
        raise ValueError("turns: runs over TLS, so its transport is tcp")
    if rest.startswith("["):
        host, _, after = rest[1:].partition("]")
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = rest.partition(":")
    if not host or (port_text and not port_text.isdigit()) or not 0 < int(port_text or 1) < 65536:
        raise ValueError("expected host or host:port after the scheme")
    return TurnUri(secure, host, int(port_text) if port_text else _DEFAULT_PORTS[scheme.lower()], transport)


async def turn_findings(turn: TurnConfig, server_name: str, network: DoctorNetwork) -> list[Finding]:
    if not turn.uris:
        return [Finding(
            "calls.turn", AREA, Status.OK,
            "No TURN server is configured ([turn] uris): calls between phones or computers on"
            " different networks will often fail to connect, since most home and mobile"
            f" networks cannot be reached directly; see the {README_SECTION} to add one.",
        )]
    timeout_s = min(network.timeout_s, TURN_TIMEOUT_S)
    creds = turn_credentials(turn, f"{_DOCTOR_USER}:{server_name}", network.clock())
    assert creds is not None  # uris is not empty
    # Side by side: URIs a firewall drops each wait out the timeout.
    return list(await asyncio.gather(*(
        _check_uri(turn, i, uri, creds["username"], creds["password"], network, timeout_s)
        for i, uri in enumerate(turn.uris)
    )))


async def _check_uri(
    turn: TurnConfig, index: int, uri: str, username: str, password: str, network: DoctorNetwork,
    timeout_s: float,
) -> Finding:
    try:
        parsed = parse_turn_uri(uri)
    except ValueError as e:
        return Finding(
            "calls.turn_uri", AREA, Status.FAIL, f"turn.uris[{index}] {uri!r} is not a TURN URI: {e}.",
            'Write it as "turn:<host>:3478?transport=udp", "turn:<host>:3478?transport=tcp" or'
            ' "turns:<host>:5349".',
        )
    name = f"TURN server {parsed.where} ({uri})"
    try:
        ip, port = (await network.addresses(parsed.host, parsed.port))[0]
    except (OSError, TimeoutError) as e:
        return Finding(
            "calls.turn_dns", AREA, Status.FAIL, f"{name}: {parsed.host} does not resolve ({e or 'timed out'}).",
            f"Publish an A (or AAAA) record for {parsed.host} with the TURN host's public address,"
            " or correct the host in [turn] uris.",
        )
    at = f"{name} at {ip}"
    firewall = (
        f"Open {parsed.transport.upper()} port {parsed.port} on the TURN host's firewall (`ufw allow"
        f" {parsed.port}/{parsed.transport}`) and check that coturn runs (`systemctl status coturn`)"
        f" and listens on it ({'tls-listening-port' if parsed.secure else 'listening-port'} in"
        " turnserver.conf)."
    )
    opened = await _connect(parsed, (ip, port), at, firewall, network.ssl_context, username, password, timeout_s)
    if isinstance(opened, Finding):
        return opened
    return await _allocate(turn, opened, at, firewall, parsed.transport, timeout_s)


async def _connect(
    uri: TurnUri, address: Address, at: str, firewall: str, trust: ssl.SSLContext, username: str,
    password: str, timeout_s: float,
) -> TurnClientTcpProtocol | TurnClientUdpProtocol | Finding:
    """The TURN client connected, or the finding saying why it could not be: a TCP port that
    refuses (or drops) connections is told apart from a failed TLS handshake."""
    if uri.transport == "tcp":
        error = await connect_error(*address, timeout_s)
        if error is not None:
            return Finding("calls.turn_reachable", AREA, Status.FAIL, f"{at}: cannot connect over TCP: {error}.", firewall)
    try:
        return await asyncio.wait_for(_open(uri, address, trust, username, password), timeout_s)
    except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
        if not uri.secure:
            return Finding("calls.turn_reachable", AREA, Status.FAIL,
                           f"{at}: cannot connect over {uri.transport.upper()}: {_reason(e, timeout_s)}.", firewall)
        return Finding(
            "calls.turn_tls", AREA, Status.FAIL, f"{at}: the TLS handshake failed: {_reason(e, timeout_s)}.",
            f"Check that port {uri.port} is coturn's tls-listening-port, with a certificate valid for"
            f" {uri.host} from a public CA (cert= with the full chain and pkey= in turnserver.conf):"
            " clients check it as a browser does.",
        )


async def _allocate(
    turn: TurnConfig, protocol: TurnClientTcpProtocol | TurnClientUdpProtocol, at: str, firewall: str,
    transport: str, timeout_s: float,
) -> Finding:
    try:
        relayed = await asyncio.wait_for(protocol.connect(), timeout_s)
    except stun.TransactionFailed as e:
        return _refused(turn, at, e.response)
    except (stun.TransactionTimeout, TimeoutError) as e:
        return Finding("calls.turn_reachable", AREA, Status.FAIL,
                       f"{at} did not answer a TURN request over {transport.upper()}: {_reason(e, timeout_s)}.",
                       firewall)
    except (ConnectionError, OSError) as e:
        return Finding("calls.turn_allocation", AREA, Status.FAIL, f"{at} did not give a TURN allocation: {_reason(e)}.",
                       "Check that a TURN server (coturn) answers there, not another service.")
    finally:
        if protocol.relayed_address is None:
            protocol.transport.close()
    # aioice's refresh task would keep the allocation: give it back now.
    try:
        await asyncio.wait_for(protocol.delete(), timeout_s)
    except (TimeoutError, stun.TransactionError, OSError):
        pass  # the server frees it when its lifetime ends
    return Finding(
        "calls.turn_allocation", AREA, Status.OK,
        f"{at} gave a relay address ({relayed[0]}:{relayed[1]}) to credentials made as"
        " GET /voip/turnServer makes them. Media then flows through coturn's relay ports"
        " (min-port..max-port), which must be open too.",
    )


async def _open(
    uri: TurnUri, address: Address, trust: ssl.SSLContext, username: str, password: str
) -> TurnClientTcpProtocol | TurnClientUdpProtocol:
    """A TURN client connected to `address` (TCP with TLS checked for the URI's host for turns:),
    not yet allocated."""
    loop = asyncio.get_running_loop()
    # A short lifetime: should the deletion be lost, the server frees it soon by itself.
    options: dict[str, Any] = {"username": username, "password": password, "lifetime": 60, "channel_refresh_time": 50}
    if uri.transport == "tcp":
        _, tcp = await loop.create_connection(
            lambda: TurnClientTcpProtocol(address, **options), address[0], address[1],
            ssl=trust if uri.secure else None, server_hostname=uri.host if uri.secure else None,
        )
        return tcp
    _, udp = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(address, **options), remote_addr=address
    )
    return udp


def _refused(turn: TurnConfig, at: str, response: stun.Message) -> Finding:
    code, reason = response.attributes.get("ERROR-CODE", (0, ""))
    why = f"{at} refused our credentials ({code} {reason})." if code == 401 else (
        f"{at} refused the allocation ({code} {reason}).")
    if code != 401:
        fix = ("Read coturn's log for why (its quotas, denied-peer-ip or allowed-peer-ip rules, or"
               " no-udp/no-tcp relay options).")
    elif turn.shared_secret:
        fix = ("static-auth-secret in turnserver.conf must equal [turn] shared_secret, with"
               " use-auth-secret on; the credentials carry an expiry time, so the clocks of this"
               " machine and the TURN host must agree too.")
    else:
        fix = (f"turnserver.conf must list the static pair as `user={turn.username}:<turn.password>`"
               " with lt-cred-mech on (and no use-auth-secret).")
    return Finding("calls.turn_allocation", AREA, Status.FAIL, why, fix)


def _reason(e: BaseException, timeout_s: float | None = None) -> str:
    if isinstance(e, (TimeoutError, stun.TransactionTimeout)):
        return f"no answer within {timeout_s:.0f} s"
    if isinstance(e, ssl.SSLCertVerificationError):
        return e.verify_message or str(e)
    if isinstance(e, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        return e.reason or str(e)
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__
