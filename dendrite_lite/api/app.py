"""The Quart app of one listener, and the services handed to its handlers.

server.py (the only wiring point) builds a `Services` record and calls `create_app` once per
listener with the blueprints that listener serves. Handlers reach the services through
`services()`, which reads the app of the current request: no module-level singletons.

What the app adds to plain Quart, each through Quart's or Werkzeug's own extension points:
- routing on the raw path (`RawPathMap`, `_SegmentConverter`): an id with an encoded `/` (`%2F`,
  possible in room version 3 event ids) stays one segment, and each segment is percent-decoded
  on its own; trailing slashes never matter and nothing redirects (Matrix clients don't follow);
- a body limit per path (`MatrixRequest`, api/limits.py): a declared Content-Length over it is
  413 M_TOO_LARGE before the handler runs, a longer streamed body while it is read;
- flow control for streamed bodies (`DrainableBody.room`, `_FlowControlledConnection`): an
  upload is read off the socket no faster than its handler writes it to disk;
- JSON through orjson (`OrjsonProvider`);
- every error as Matrix JSON from one place (api/errors.py), CORS headers on every answer, and
  OPTIONS answered before routing (the spec: a CORS preflight runs no endpoint logic).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import orjson
from quart import Blueprint, Quart, Response, current_app, request
from quart.json.provider import DefaultJSONProvider
from quart.routing import QuartMap
from quart.wrappers import Request
from quart.asgi import ASGIHTTPConnection
from quart.wrappers.request import Body
from hypercorn.typing import ASGIReceiveCallable
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter, PathConverter, UnicodeConverter

from dendrite_lite.api.cors import CORS_HEADERS
from dendrite_lite.api.errors import error_response, http_error_response, unhandled_error_response
from dendrite_lite.api.limits import body_limit_for
from dendrite_lite.backup.schedule import BackupSchedule
from dendrite_lite.config import Config
from dendrite_lite.crypto.keys import ServerKey
from dendrite_lite.e2ee.cross_signing import CrossSigningService
from dendrite_lite.e2ee.dehydrated_devices import DehydratedDevicesService
from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.e2ee.federation_answers import FederationKeyAnswers
from dendrite_lite.e2ee.key_backup import KeyBackupService
from dendrite_lite.e2ee.keys import KeysService
from dendrite_lite.e2ee.remote_device_lists import RemoteDeviceLists
from dendrite_lite.e2ee.to_device import ToDeviceService
from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.federation.device_list_edus import DeviceListEdus
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.keyring import Keyring
from dendrite_lite.federation.public_rooms import PublicRoomsDirectory
from dendrite_lite.federation.room_reads import FederationReads
from dendrite_lite.federation.transactions import TransactionReceiver
from dendrite_lite.federation.remote_membership import FederatedMembership
from dendrite_lite.federation.sender import FederationSender
from dendrite_lite.jobs import BackgroundUpdates
from dendrite_lite.media.retention import RemoteMediaRetention
from dendrite_lite.media.service import MediaService
from dendrite_lite.ratelimit import RateLimits
from dendrite_lite.server_status import ServerStatus
from dendrite_lite.rooms.pipeline import RoomPipeline
from dendrite_lite.rooms.read_markers import ReadMarkersService
from dendrite_lite.rooms.receipts import ReceiptsService
from dendrite_lite.rooms.typing import TypingService
from dendrite_lite.storage import Storage
from dendrite_lite.rooms.history import HistoryService
from dendrite_lite.rooms.notification_list import NotificationList
from dendrite_lite.rooms.hierarchy import SpaceHierarchy
from dendrite_lite.rooms.reports import ReportsService
from dendrite_lite.rooms.admin import RoomAdmin
from dendrite_lite.rooms.purge import HistoryPurges
from dendrite_lite.rooms.shutdown import RoomShutdown
from dendrite_lite.rooms.delayed_events import DelayedEvents
from dendrite_lite.rooms.event_expiry import EventExpiry
from dendrite_lite.sync.filter_store import FilterService
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.service import SyncService
from dendrite_lite.sync.sliding.service import SlidingSyncService
from dendrite_lite.rooms.thread_subscriptions import ThreadSubscriptionsService
from dendrite_lite.rooms.third_party_invites import ThirdPartyInvites
from dendrite_lite.users.account_data import AccountDataService
from dendrite_lite.users.identity_server import IdentityServers
from dendrite_lite.users.threepid_bindings import ThreepidBindings
from dendrite_lite.users.presence import PresenceService
from dendrite_lite.users.cas import CasService
from dendrite_lite.users.oidc import OidcService
from dendrite_lite.users.login_tokens import LoginTokens
from dendrite_lite.users.openid import OpenIdService
from dendrite_lite.users.user_directory import UserDirectory
from dendrite_lite.users.push_gateway import PushGateway
from dendrite_lite.users.email_notifier import EmailNotifier
from dendrite_lite.users.pushers import PushersService
from dendrite_lite.users.push_rules import PushRulesService
from dendrite_lite.users.remote_profiles import RemoteProfiles
from dendrite_lite.users.registration import SharedSecretNonces
from dendrite_lite.users.threepids import EmailValidation
from dendrite_lite.users.uia import UiaSessions

if TYPE_CHECKING:
    from dendrite_lite.appservice.requests import AppserviceRequests
    from dendrite_lite.appservice.registry import AppServices
    from dendrite_lite.appservice.sender import AppserviceSender
    from dendrite_lite.media.preview import UrlPreviews
    from dendrite_lite.metrics import ServerMetrics

__all__ = ["Services", "create_app", "services", "BODY_TIMEOUT_S"]

# A body that has not fully arrived this long after the handler asked for it is answered
# 408 and its connection closed: a client trickling a body cannot hold a request forever.
BODY_TIMEOUT_S = 30


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
    # One-time tokens of POST /login/get_token (login.get_token) and of single sign-on, in
    # memory like UIA sessions.
    login_tokens: LoginTokens = field(default_factory=LoginTokens)
    # Single sign-on through a CAS server (None unless cas.server_url is set).
    cas: CasService | None = None
    # Single sign-on through OpenID Connect providers (None without [[oidc_providers]]).
    oidc: OidcService | None = None
    # Synapse's background updates switch, remembered per process (jobs.py: we have none).
    background_updates: BackgroundUpdates = field(default_factory=BackgroundUpdates)
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
    # Simplified sliding sync, MSC4186 (always set by load_services).
    sliding_sync: SlidingSyncService = None  # type: ignore[assignment]
    # Thread subscriptions, MSC4306 (always set by load_services).
    thread_subscriptions: ThreadSubscriptionsService = None  # type: ignore[assignment]
    # Federation (issue 5): other servers' keys, and signed outbound requests (None when
    # federation.enabled = false; the keyring then answers from what it already has).
    keyring: Keyring = None  # type: ignore[assignment]
    federation_client: FederationClient | None = None
    # Application services (issue 19): the registrations (empty without any), what is queued
    # for each (None without one that has a url), and our requests to them.
    appservices: AppServices = None  # type: ignore[assignment]
    appservice_sender: AppserviceSender | None = None
    appservice_requests: AppserviceRequests | None = None
    # The outbox sender (None when federation is disabled): our events and EDUs to other
    # servers, and their delivery health (federation/sender.py).
    federation_sender: FederationSender | None = None
    # Events from other servers (federation/ingest.py) and membership across servers (joins,
    # invites, leaves, knocks both ways); None when federation is disabled.
    federation_ingest: FederationIngest | None = None
    federated_membership: FederatedMembership | None = None
    # Other servers' users' profiles, asked over federation and cached briefly (None when
    # federation is disabled: only our users have profiles then).
    remote_profiles: RemoteProfiles | None = None
    # The federation read endpoints and /send (always set by load_services).
    federation_reads: FederationReads = None  # type: ignore[assignment]
    federation_txns: TransactionReceiver = None  # type: ignore[assignment]
    # End-to-end encryption (issue 13): device and one-time keys, device list tracking,
    # to-device messages (always set by load_services).
    keys: KeysService = None  # type: ignore[assignment]
    device_lists: DeviceListService = None  # type: ignore[assignment]
    to_device: ToDeviceService = None  # type: ignore[assignment]
    cross_signing: CrossSigningService = None  # type: ignore[assignment]
    key_backup: KeyBackupService = None  # type: ignore[assignment]
    # Our users' keys as other servers ask for them (always set), and other servers' users'
    # device lists we keep (None when federation is disabled).
    federation_keys: FederationKeyAnswers = None  # type: ignore[assignment]
    remote_device_lists: RemoteDeviceLists | None = None
    # Our users' device list changes to other servers (None when federation is disabled).
    device_list_edus: DeviceListEdus | None = None
    dehydrated_devices: DehydratedDevicesService = None  # type: ignore[assignment]
    # Pushers, their delivery to push gateways, and GET /notifications (issue 13 item 10;
    # always set by load_services).
    pushers: PushersService = None  # type: ignore[assignment]
    push_gateway: PushGateway | None = None
    # The mailer of email pushers (None unless [email] is set up and email.notif_enabled).
    email_notifier: EmailNotifier | None = None
    notification_list: NotificationList = None  # type: ignore[assignment]
    # Content reports for the server admin (always set by load_services).
    reports: ReportsService = None  # type: ignore[assignment]
    # The admin API's rooms: reads, blocking, room deletion, history purges (always set).
    room_admin: RoomAdmin = None  # type: ignore[assignment]
    room_shutdown: RoomShutdown = None  # type: ignore[assignment]
    history_purges: HistoryPurges = None  # type: ignore[assignment]
    # The media repository: uploads, downloads, thumbnails (always set by load_services).
    media: MediaService = None  # type: ignore[assignment]
    # GET /rooms/{roomId}/hierarchy (always set by load_services).
    hierarchy: SpaceHierarchy = None  # type: ignore[assignment]
    # OpenID tokens for third parties (always set by load_services).
    openid: OpenIdService = None  # type: ignore[assignment]
    # POST /user_directory/search (always set by load_services).
    user_directory: UserDirectory = None  # type: ignore[assignment]
    # MSC2228 self-destructing events: the schedule's task (always set by load_services).
    event_expiry: EventExpiry = None  # type: ignore[assignment]
    delayed_events: DelayedEvents | None = None  # MSC4140; None only in tests building Services
    # /publicRooms of this server or another (always set by load_services).
    public_rooms: PublicRoomsDirectory = None  # type: ignore[assignment]
    # GET /media/preview_url (None unless media.url_preview_enabled).
    url_previews: UrlPreviews | None = None
    # The admin dashboard's status and log tail (always set by load_services).
    server_status: ServerStatus = None  # type: ignore[assignment]
    # Scheduled backups (backup.directory), None when none are configured.
    backups: BackupSchedule | None = None
    # Remote media retention (media.remote_media_lifetime_days), None when it is 0.
    media_retention: RemoteMediaRetention | None = None
    # Prometheus metrics (None unless metrics.enabled; metrics.py).
    metrics: ServerMetrics | None = None
    # Email validation, /requestToken and the confirmation link (always set by load_services;
    # it refuses email requests without [email]).
    email_validation: EmailValidation = None  # type: ignore[assignment]
    # Identity servers: our requests to them, the 3PIDs bound through us, and invites by email
    # address (users/identity_server.py, users/threepid_bindings.py, rooms/third_party_invites.py;
    # always set by load_services).
    identity_servers: IdentityServers = None  # type: ignore[assignment]
    threepid_bindings: ThreepidBindings = None  # type: ignore[assignment]
    third_party_invites: ThirdPartyInvites = None  # type: ignore[assignment]

    @property
    def sso_enabled(self) -> bool:
        """Whether users may sign in through single sign-on (CAS or OpenID Connect)."""
        return self.cas is not None or self.oidc is not None


# --- routing on the raw path ---------------------------------------------------------------------
class _SegmentConverter(UnicodeConverter):
    """One path segment, percent-decoded after matching (so `%2F` never splits it)."""

    def to_python(self, value: str) -> str:
        return unquote(value)


class _RestConverter(PathConverter):
    """`<path:name>`: the rest of the path, decoded."""

    def to_python(self, value: str) -> str:
        return unquote(value)


class RawPathMap(QuartMap):
    """Matches rules against the path as sent (ASGI `raw_path`), not the decoded one."""

    def bind_to_request(self, request: Any, subdomain: str | None, server_name: str | None) -> MapAdapter:
        raw = request.scope.get("raw_path")
        path = raw.decode("latin-1") if raw else request.path
        # No host matching or subdomains here: the Host header only names the adapter.
        return Map.bind(
            self, request.host.lower() or "localhost", request.root_path, None, request.scheme,
            request.method, path, request.query_string.decode("latin-1"),
        )


# --- requests with a body limit of their path ----------------------------------------------------
# A refused body is still read (and dropped) this long, so the client reads the 413 instead of
# a connection reset: closing a socket with unread data makes the kernel answer with a reset.
DRAIN_TIMEOUT_S = 5.0


# A streamed body (an upload) is read off the connection only while less than this waits for its
# handler: past it, `handle_messages` stops calling receive(), Hypercorn's bounded app queue
# fills and it stops reading the socket (TCP flow control then holds the client). Without this
# Quart reads as fast as the client sends, and a 50 MiB upload sat in memory whole (measured:
# +64 MiB peak RSS) while it went to disk.
BODY_BUFFER_BYTES = 256 * 1024


class DrainableBody(Body):
    """Quart's body, which also tells when the last of it arrived, kept or not (`ended`), and
    holds at most BODY_BUFFER_BYTES unless its handler awaits it whole (`room`).

    Past the limit Quart drops what arrives and wakes the reader at once (through
    `set_complete`); `ended` waits for the real end of the body. A body awaited whole is never
    held back (its handler waits for all of it, within the body limit); nor is one being
    drained after an error (`discard`)."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self.ended = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self._appending = False
        self._whole = False
        self._discarding = False

    def append(self, data: bytes) -> None:
        if self._discarding:
            return
        self._appending = True
        try:
            super().append(data)
        finally:
            self._appending = False
        if not self._whole and len(self._data) >= BODY_BUFFER_BYTES:
            self.room.clear()

    async def __anext__(self) -> bytes:
        try:
            return await super().__anext__()
        finally:
            self.room.set()

    def __await__(self) -> Generator[Any, None, Any]:
        # request.get_data()/get_json(): the handler wants it all, so it all is read.
        self._whole = True
        self.room.set()
        return super().__await__()

    def discard(self) -> None:
        """Drop the rest of the body as it arrives (its handler gave up on it)."""
        self._discarding = True
        self._data.clear()
        self.room.set()

    def set_complete(self) -> None:
        if not self._appending:  # from the server's last body message, not from the limit
            self.ended.set()
        self.room.set()
        super().set_complete()


class _FlowControlledConnection(ASGIHTTPConnection):
    """Quart's HTTP connection, receiving body messages only while the body has `room`."""

    async def handle_messages(self, request: Request, receive: ASGIReceiveCallable) -> None:
        body = request.body
        if isinstance(body, DrainableBody):
            await _receive_with_room(body, receive)
        else:
            await super().handle_messages(request, receive)


async def _receive_with_room(body: DrainableBody, receive: ASGIReceiveCallable) -> None:
    while True:
        await body.room.wait()
        message = await receive()
        if message["type"] == "http.request":
            body.append(message.get("body", b""))
            if not message.get("more_body", False):
                body.set_complete()
        elif message["type"] == "http.disconnect":
            return


class MatrixRequest(Request):
    """A Quart request whose body limit is chosen by its path (`body_limit`, set per app)."""

    body_class = DrainableBody
    body_limit: Callable[[str], int | None] = staticmethod(lambda path: None)

    def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
        kwargs["max_content_length"] = self.body_limit(path)
        super().__init__(method, scheme, path, *args, **kwargs)
        self.max_content_length = kwargs["max_content_length"]


# --- JSON -------------------------------------------------------------------------------------------
class OrjsonProvider(DefaultJSONProvider):
    """orjson for responses; the standard library for what orjson refuses (integers past 64
    bits that a client put into event content)."""

    mimetype = "application/json"

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return _dump(obj).decode("utf-8")

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return json.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return cast(Response, self._app.response_class(_dump(obj), mimetype=self.mimetype))


def _dump(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- the app ------------------------------------------------------------------------------------------
class MatrixApp(Quart):
    asgi_http_class = _FlowControlledConnection
    url_map_class = RawPathMap
    json_provider_class = OrjsonProvider


def create_app(
    svc: Services,
    blueprints: Iterable[Blueprint],
    *,
    name: str = "dendrite_lite",
    first: Iterable[Callable[[], Awaitable[None]]] = (),
) -> Quart:
    """`first`: before_request hooks that run ahead of the app's own (which may answer the
    request before later hooks run: an OPTIONS preflight, a 404)."""
    app = MatrixApp(name)
    app.extensions["dendrite_lite"] = svc
    app.config["BODY_TIMEOUT"] = BODY_TIMEOUT_S
    app.request_class = type(
        "MatrixRequest", (MatrixRequest,), {"body_limit": staticmethod(body_limit_for(svc.config))}
    )
    url_map = app.url_map
    url_map.converters["default"] = url_map.converters["string"] = _SegmentConverter
    url_map.converters["path"] = _RestConverter
    url_map.strict_slashes = False
    url_map.merge_slashes = False
    url_map.redirect_defaults = False
    for hook in first:
        app.before_request(hook)
    app.before_request(_preflight_and_declared_size)
    app.after_request(_finish_response)
    app.register_error_handler(MatrixError, _matrix_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unhandled_error)
    for bp in blueprints:
        app.register_blueprint(bp)
    return app


def services() -> Services:
    """The Services of the app handling the current request."""
    return cast(Services, current_app.extensions["dendrite_lite"])


async def _preflight_and_declared_size() -> Response | None:
    if request.method == "OPTIONS":
        return Response(b"", status=204)
    if request.routing_exception is not None:
        raise request.routing_exception  # 404/405 come before any look at the body
    limit = request.max_content_length
    declared = request.content_length
    if limit is not None and declared is not None and declared > limit:
        raise MatrixError(Errcode.TOO_LARGE, "Request body too large", status=413)
    return None


async def _finish_response(response: Response) -> Response:
    # HEAD needs nothing here: Hypercorn sends the GET's headers and drops the body.
    response.headers.update(CORS_HEADERS)
    return response


async def _matrix_error(e: MatrixError) -> Response:
    if e.status == 413:
        await _drain_refused_body()
    return error_response(e)


async def _http_error(e: HTTPException) -> Response:
    if e.code == 413:
        await _drain_refused_body()
    return http_error_response(e)


async def _drain_refused_body() -> None:
    body = request.body
    if isinstance(body, DrainableBody):
        body.discard()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(body.ended.wait(), DRAIN_TIMEOUT_S)


async def _unhandled_error(e: Exception) -> Response:
    return unhandled_error_response(request.method, request.path, e)
