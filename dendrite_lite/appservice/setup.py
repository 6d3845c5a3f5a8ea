"""The application services of a config, built for service_wiring: the registrations (checked
again: the files may have changed since `config check`), each AS's sender user, the delivery
queues and the requests to the ASes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dendrite_lite.appservice.accounts import ensure_sender_accounts
from dendrite_lite.appservice.http import AppserviceHttp
from dendrite_lite.appservice.registration import RegistrationError, load_registrations
from dendrite_lite.appservice.registry import AppServices
from dendrite_lite.appservice.requests import AppserviceRequests
from dendrite_lite.appservice.sender import AppserviceSender
from dendrite_lite.config import Config
from dendrite_lite.federation.destinations import BackoffPolicy
from dendrite_lite.storage import Storage
from dendrite_lite.storage import appservices as table

__all__ = ["AppserviceConfigError", "LoadedAppservices", "load_appservices"]


log = logging.getLogger(__name__)


class AppserviceConfigError(Exception):
    """A registration file is wrong; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class LoadedAppservices:
    registry: AppServices
    sender: AppserviceSender | None
    requests: AppserviceRequests | None

    def as_services(self) -> dict[str, Any]:
        """The Services fields (api/app.py)."""
        return {
            "appservices": self.registry,
            "appservice_sender": self.sender,
            "appservice_requests": self.requests,
        }


async def load_appservices(config: Config, storage: Storage) -> LoadedAppservices:
    server_name = config.server.server_name
    try:
        registrations = load_registrations(config.appservices.registration_files, server_name)
    except RegistrationError as e:
        raise AppserviceConfigError(f"appservices.registration_files: {e}") from None
    registry = AppServices(registrations, server_name)
    await _forget_unregistered(storage, registry)
    if not registrations:
        return LoadedAppservices(registry, None, None)
    await ensure_sender_accounts(storage, registry)
    policy = BackoffPolicy(
        initial_ms=int(config.appservices.retry_initial_s * 1000),
        max_ms=int(config.appservices.retry_max_s * 1000),
    )
    sender = None
    if any(r.url is not None for r in registrations):
        sender = AppserviceSender(storage, registry, AppserviceHttp(), policy=policy)
    requests = AppserviceRequests(registry, AppserviceHttp())
    if sender is not None:
        requests.on_alive = sender.retry_now
    return LoadedAppservices(registry, sender, requests)


async def _forget_unregistered(storage: Storage, registry: AppServices) -> None:
    """Events queued for a bridge whose registration was removed (or lost its url) would wait
    forever: they go, and the log says how many."""
    receiving = [r.id for r in registry if r.url is not None]
    dropped = await storage.db.write(lambda c: table.delete_outbox_except(c, receiving))
    if dropped:
        log.warning("appservices: dropped %d queued event(s) of appservices no longer registered", dropped)
