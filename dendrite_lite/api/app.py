"""The app factory the API layer offers to server.py, and the services handed to handlers.

server.py (the only wiring point) builds a `Services` record and calls `create_app` once per
listener with the blueprints that listener serves. Handlers reach the services through
`services()`, which reads the app of the current request: no module-level singletons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

from dendrite_lite.api.asgi import App
from dendrite_lite.api.http import current_request
from dendrite_lite.api.limits import body_limit_for
from dendrite_lite.api.routing import Blueprint
from dendrite_lite.config import Config
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.keyring import Keyring
from dendrite_lite.federation.room_reads import FederationReads
from dendrite_lite.federation.transactions import TransactionReceiver
from dendrite_lite.federation.remote_membership import FederatedMembership
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.ratelimit import RateLimits
from dendrite_lite.rooms.pipeline import RoomPipeline
from dendrite_lite.rooms.read_markers import ReadMarkersService
from dendrite_lite.rooms.receipts import ReceiptsService
from dendrite_lite.rooms.typing import TypingService
from dendrite_lite.storage import Storage
from dendrite_lite.rooms.history import HistoryService
from dendrite_lite.sync.filter_store import FilterService
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.service import SyncService
from dendrite_lite.users.account_data import AccountDataService
from dendrite_lite.users.presence import PresenceService
from dendrite_lite.users.push_rules import PushRulesService
from dendrite_lite.users.registration import SharedSecretNonces
from dendrite_lite.users.uia import UiaSessions

__all__ = ["Services", "create_app", "services"]


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a handler may use. Later issues add the room, user, sync... services here."""

    config: Config
    server_key: ServerKey
    storage: Storage
    ratelimits: RateLimits = field(default_factory=RateLimits.unlimited)
    # In-memory, per-process state of the account endpoints (issue 4).
    uia: UiaSessions = field(default_factory=UiaSessions)
    registration_nonces: SharedSecretNonces = field(default_factory=SharedSecretNonces)
    # Wakes /sync; the pipeline notifies it after every commit (built by server.load_services).
    notifier: Notifier = field(default_factory=Notifier)
    pipeline: RoomPipeline = None  # type: ignore[assignment]  # always set by load_services
    # Per-user data and ephemeral streams (always set by load_services).
    account_data: AccountDataService = None  # type: ignore[assignment]
    push_rules: PushRulesService = None  # type: ignore[assignment]
    receipts: ReceiptsService = None  # type: ignore[assignment]
    read_markers: ReadMarkersService = None  # type: ignore[assignment]
    typing: TypingService = None  # type: ignore[assignment]
    presence: PresenceService = None  # type: ignore[assignment]
    # /sync, filters, /messages and /context (always set by load_services).
    sync: SyncService = None  # type: ignore[assignment]
    filters: FilterService = None  # type: ignore[assignment]
    history: HistoryService = None  # type: ignore[assignment]
    # Federation (issue 5): other servers' keys, and signed outbound requests (None when
    # federation.enabled = false; the keyring then answers from what it already has).
    keyring: Keyring = None  # type: ignore[assignment]
    federation_client: FederationClient | None = None
    # The outbox sender (None when federation is disabled): our events and EDUs to other
    # servers, and their delivery health (federation/sender.py).
    federation_sender: FederationSender | None = None
    # Events from other servers (federation/ingest.py) and membership across servers (joins,
    # invites, leaves, knocks both ways); None when federation is disabled.
    federation_ingest: FederationIngest | None = None
    federated_membership: FederatedMembership | None = None
    # The federation read endpoints and /send (always set by load_services).
    federation_reads: FederationReads = None  # type: ignore[assignment]
    federation_txns: TransactionReceiver = None  # type: ignore[assignment]


def create_app(svc: Services, blueprints: Iterable[Blueprint], *, name: str = "dendrite_lite") -> App:
    app = App(name, svc, body_limit_for(svc.config))
    for bp in blueprints:
        app.register_blueprint(bp)
    return app


def services() -> Services:
    """The Services of the app handling the current request."""
    return cast(Services, current_request().app.services)
