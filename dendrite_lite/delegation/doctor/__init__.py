"""`dendrite-lite doctor`: checks of a server name as other servers see it, returning
`Finding`s (never printing): server name grammar, /.well-known/matrix/server, SRV records,
A/AAAA, TLS per address, the key document, the version endpoint and the clock.

The resolution is discovery.py's and the HTTP requests go through the federation client, so
what the doctor reports is what federation does.
"""

from dendrite_lite.delegation.doctor.diagnose import diagnose
from dendrite_lite.delegation.doctor.findings import AREAS, Finding, Status, worst
from dendrite_lite.delegation.doctor.network import DoctorNetwork, make_trust

__all__ = ["AREAS", "DoctorNetwork", "Finding", "Status", "diagnose", "make_trust", "worst"]
