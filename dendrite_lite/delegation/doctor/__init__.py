"""`dendrite-lite doctor`: checks of a server name as other servers and clients see it,
returning `Finding`s (never printing): server name grammar, /.well-known/matrix/server, SRV
records, A/AAAA, TLS per address, the key document, the version endpoint and the clock;
/.well-known/matrix/client with its CORS header and base_url; and for the configured server,
a request signed with its own key to itself through its public address, its ports on
server.public_ip, the destinations its outbox is backing off from, its TURN servers (an
allocation with the credentials it hands out) and lk-jwt-service for calls, its certificate
files and ACME renewal, and the local setup (public_baseurl, open registration, file
permissions, free disk space).

The resolution is discovery.py's and the HTTP requests go through the federation client, so
what the doctor reports is what federation does.
"""

from dendrite_lite.delegation.doctor.diagnose import diagnose
from dendrite_lite.delegation.doctor.findings import AREAS, Finding, Status, worst
from dendrite_lite.delegation.doctor.local_checks import LocalSetup
from dendrite_lite.delegation.doctor.network import DoctorNetwork, make_trust

__all__ = ["AREAS", "DoctorNetwork", "Finding", "LocalSetup", "Status", "diagnose", "make_trust", "worst"]
