"""What `dendrite-lite tls status` (and doctor) report: the ACME certificate as it is on disk,
with the renewer's state.json beside it.

certificate.pem is the truth for names, issuer and validity: state.json is written after the
certificate, so a crash in between (or a hand-copied certificate) can leave it describing the
previous one. Renewal timing and the outcome of the last attempt come only from state.json.
"""

from __future__ import annotations

from dataclasses import dataclass

from dendrite_lite.config import Config
from dendrite_lite.tls.certs import CertificateSummary, summarize
from dendrite_lite.tls.renewal import names_changed, renewal_at
from dendrite_lite.tls.state import CERTIFICATE_FILE, AcmeState, load_state

__all__ = ["EXPIRY_WARNING_DAYS", "TlsStatus", "tls_status"]

# A certificate closer than this to its expiry is not "fine": the renewer should have renewed it
# a month ago (at a third of a 90-day lifetime), so something keeps failing.
EXPIRY_WARNING_DAYS = 7
_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class TlsStatus:
    state: AcmeState
    certificate: CertificateSummary | None
    certificate_error: str  # why certificate.pem could not be read ("" when absent or fine)
    wanted_names: tuple[str, ...]  # what the config asks for (Config.acme_names)
    next_renewal: float | None
    now: float

    @property
    def days_left(self) -> float | None:
        if self.certificate is None:
            return None
        return (self.certificate.not_after - self.now) / _DAY_S

    @property
    def ok(self) -> bool:
        """A certificate that is valid now and for more than EXPIRY_WARNING_DAYS."""
        cert, days = self.certificate, self.days_left
        return cert is not None and days is not None and cert.not_before <= self.now and (
            days > EXPIRY_WARNING_DAYS
        )

    @property
    def names_pending(self) -> bool:
        """The config names other names than the certificate: the next attempt gets them."""
        return self.certificate is not None and names_changed(
            AcmeState(names=self.certificate.names), self.wanted_names
        )


def tls_status(config: Config, now: float) -> TlsStatus:
    state = load_state(config.acme_dir)
    cert: CertificateSummary | None = None
    error = ""
    try:
        pem = (config.acme_dir / CERTIFICATE_FILE).read_bytes()
    except FileNotFoundError:
        pass
    except OSError as e:
        error = f"{config.acme_dir / CERTIFICATE_FILE}: {e.strerror}"
    else:
        try:
            cert = summarize(pem)
        except ValueError:  # cryptography's reason is a link to its FAQ: ours says more
            error = f"{config.acme_dir / CERTIFICATE_FILE} holds no readable PEM certificate"
    next_renewal = state.next_renewal
    if cert is not None and (next_renewal is None or not _same_time(state.not_after, cert.not_after)):
        # state.json describes another certificate (or none): the file's own lifetime decides.
        next_renewal = renewal_at(cert.not_before, cert.not_after)
    return TlsStatus(state, cert, error, config.acme_names, next_renewal, now)


def _same_time(recorded: float | None, on_certificate: float) -> bool:
    # X.509 times are whole seconds; a renewer may have recorded a fraction.
    return recorded is not None and abs(recorded - on_certificate) < 1
