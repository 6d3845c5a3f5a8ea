"""The Quart app factory the API layer offers to server.py, and the services handed to handlers.

server.py (the only wiring point) builds a `Services` record and calls `create_app` once per
listener with the blueprints that listener serves. Handlers reach the services through
`services()`, which reads the current app's state: no module-level singletons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from quart import Blueprint, Quart, current_app
from quart.routing import QuartRule

from dendrite_lite.api.cors import register_cors
from dendrite_lite.api.errors import register_error_handlers
from dendrite_lite.api.limits import register_body_limits
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

_EXTENSION = "dendrite_lite"


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


class _LazyBuilderRule(QuartRule):
    """A URL rule that compiles its URL *builder* on first use instead of when it is added.

    Werkzeug compiles two builder functions per rule (for url_for), which costs most of the time
    of building an app with hundreds of routes, and tests start hundreds of servers. We never
    build URLs from rules, so the cost is deferred to a first use that never comes. If werkzeug
    stops calling `_compile_builder`, this is simply never used.
    """

    def _compile_builder(self, *args: Any, **kwargs: Any) -> Any:
        compiled: Any = None
        compile_now = super()._compile_builder

        def build(rule: Any, *a: Any, **kw: Any) -> Any:
            nonlocal compiled
            if compiled is None:
                compiled = compile_now(*args, **kwargs)
            return compiled(rule, *a, **kw)

        return build


def create_app(svc: Services, blueprints: Iterable[Blueprint], *, name: str = "dendrite_lite") -> Quart:
    app = Quart(name)
    app.url_rule_class = _LazyBuilderRule
    # Exceptions are always rendered as Matrix errors, never re-raised into Hypercorn.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["JSON_SORT_KEYS"] = False
    # Matrix paths have no trailing-slash variants; never answer with a redirect.
    app.url_map.strict_slashes = False
    app.extensions[_EXTENSION] = svc
    register_body_limits(app, svc.config)
    register_cors(app)
    register_error_handlers(app)
    for bp in blueprints:
        app.register_blueprint(bp)
    return app


def services() -> Services:
    """The Services of the app handling the current request."""
    return cast(Services, current_app.extensions[_EXTENSION])
