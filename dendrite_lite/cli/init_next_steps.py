"""What `dendrite-lite init` prints last: what to publish (per delegation choice), how to
start the server and how to check it, and what the chosen setup still needs from the user."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from dendrite_lite.cli.init_delegation import records_to_publish
from dendrite_lite.cli.init_wizard import InitAnswers
from dendrite_lite.config import Config, split_address
from dendrite_lite.delegation.local_ports import PRIVILEGE_HINT

__all__ = ["SYSTEMD_UNITS", "next_steps"]

# Where a packaged unit would be; `systemctl` is only suggested when one is installed.
SYSTEMD_UNITS = (
    Path("/etc/systemd/system/dendrite-lite.service"),
    Path("/lib/systemd/system/dendrite-lite.service"),
)


def next_steps(answers: InitAnswers, cfg: Config, config_path: Path) -> str:
    assert answers.delegation is not None and answers.server_name is not None
    lines = ["", "Next steps:", "1. Publish these DNS records and files (the doctor checks them):"]
    lines += [
        f"     {line}"
        for line in records_to_publish(
            answers.delegation, answers.server_name, answers.delegated_host,
            cfg.public_baseurl, cfg.server.public_ip,
        )
    ]
    if any(unit.exists() for unit in SYSTEMD_UNITS):
        lines.append("2. Start the server: systemctl enable --now dendrite-lite")
    else:
        lines.append(f"2. Start the server: dendrite-lite run --config {config_path}")
    lines.append(
        f"3. Check it as other servers see it: dendrite-lite doctor --config {config_path}"
    )
    notes = _notes(cfg, config_path)
    if notes:
        lines.append("Also:")
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines)


def _notes(cfg: Config, config_path: Path) -> list[str]:
    notes = []
    if not cfg.client_tls and cfg.tls.mode != "proxy":
        # The appliance layout: the proxy the user runs must know where to forward.
        notes.append(f"Point your reverse proxy's client API at http://{cfg.listen.client}")
    elif cfg.tls.mode == "proxy":
        forward = f"http://{cfg.listen.client}"
        if cfg.listen.federation:
            forward += f" (and port 8448 to http://{cfg.listen.federation})"
        notes.append(f"Your reverse proxy forwards https://{urlsplit(cfg.public_baseurl).netloc}/ to {forward}")
    listeners = [cfg.listen.client, cfg.listen.federation]
    if cfg.tls.mode == "acme":
        listeners.append(cfg.listen.acme_http)
    if any(a and split_address(a)[1] < 1024 for a in listeners):
        notes.append(f"As a user other than root, {PRIVILEGE_HINT}")
    if cfg.registration.mode == "token":
        # Token registration is useless until the admin knows how to hand out a token.
        notes.append(
            f"Make a sign-up token: dendrite-lite registration-token create --config {config_path}"
        )
    return notes
