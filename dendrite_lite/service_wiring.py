"""The server's services, built from the config: the signing key, storage (refusing a database
made for another server name), and every service the apps share (`Services`, api/app.py), in the
order they depend on each other; and their orderly shutdown. Half of the wiring point: server.py
builds the apps and listeners over what `load_services` returns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from dendrite_lite.api.app import Services
from dendrite_lite.appservice.registry import AppServices
from dendrite_lite.appservice.setup import AppserviceConfigError, load_appservices
from dendrite_lite.backup.schedule import BackupSchedule
from dendrite_lite.config import Config
from dendrite_lite.log_buffer import install_log_buffer
from dendrite_lite.crypto.keys import KeyFileError, ServerKey, load_signing_key
from dendrite_lite.e2ee.cross_signing import CrossSigningService
from dendrite_lite.e2ee.dehydrated_devices import DehydratedDevicesService
from dendrite_lite.e2ee.device_lists import DeviceListService
from dendrite_lite.e2ee.federation_answers import FederationKeyAnswers
from dendrite_lite.e2ee.key_backup import KeyBackupService
from dendrite_lite.e2ee.keys import KeysService
from dendrite_lite.e2ee.remote_device_lists import RemoteDeviceLists
from dendrite_lite.e2ee.remote_keys import FederatedKeys
from dendrite_lite.e2ee.sync_extensions import E2eeSync
from dendrite_lite.e2ee.to_device import ToDeviceService
from dendrite_lite.ratelimit import RateLimiter, RateLimits
from dendrite_lite.rooms.delayed_events import DelayedEvents, cancel_overridden_state
from dendrite_lite.rooms.event_expiry import EventExpiry
from dendrite_lite.rooms.event_rate import EventRate
from dendrite_lite.rooms.guest_access import GuestAccessRevocation
from dendrite_lite.rooms.membership import MembershipService
from dendrite_lite.rooms.pipeline import CommitHook, RoomPipeline
from dendrite_lite.rooms.read_markers import ReadMarkersService
from dendrite_lite.rooms.room_events import RoomEventsService
from dendrite_lite.rooms.receipts import ReceiptsService
from dendrite_lite.rooms.third_party_invites import ThirdPartyInvites
from dendrite_lite.rooms.typing import TypingService
from dendrite_lite.federation.client import FederationClient
from dendrite_lite.federation.device_list_edus import DeviceListEdus
from dendrite_lite.federation.e2ee_client import E2eeRequests
from dendrite_lite.federation.edus import EduFanout
from dendrite_lite.federation.inbound_edus import InboundEdus
from dendrite_lite.federation.hierarchy import RemoteHierarchy
from dendrite_lite.federation.public_rooms import PublicRoomsDirectory
from dendrite_lite.federation.room_reads import FederationReads
from dendrite_lite.federation.transactions import TransactionReceiver
from dendrite_lite.federation.backfill import Backfiller
from dendrite_lite.federation.ingest import FederationIngest
from dendrite_lite.federation.keyring import Keyring
from dendrite_lite.federation.remote_membership import FederatedMembership
from dendrite_lite.federation.room_complexity import ComplexityLimit
from dendrite_lite.federation.requester import ClientRequester
from dendrite_lite.federation.sender import ClientTransport, FederationSender
from dendrite_lite.federation.to_device_edus import ToDeviceEdus
from dendrite_lite.federation.media import MediaDownloads
from dendrite_lite.media.admin import MediaAdmin
from dendrite_lite.media.remote import RemoteMedia
from dendrite_lite.media.repository import MediaRepository
from dendrite_lite.media.retention import RemoteMediaRetention
from dendrite_lite.media.service import MediaService
from dendrite_lite.media.store import FileStore
from dendrite_lite.media.thumbnails import Thumbnails
from dendrite_lite.storage import MigrationError, SchemaTooNew, Storage
from dendrite_lite.storage import server_identity
from dendrite_lite.users.recaptcha import Recaptcha
from dendrite_lite.users.cas import CasService
from dendrite_lite.users.identity_server import IdentityServers
from dendrite_lite.users.threepid_bindings import ThreepidBindings
from dendrite_lite.users.oidc import OidcService, OidcSetupError
from dendrite_lite.users.uia import UiaSessions
from dendrite_lite.users.email_sender import EmailSender
from dendrite_lite.users.email_notifier import EmailNotifier
from dendrite_lite.users.threepids import EmailValidation
from dendrite_lite.rooms.history import HistoryService
from dendrite_lite.rooms.notification_list import NotificationList
from dendrite_lite.rooms.notifications import NotificationCounter, PersistHook
from dendrite_lite.rooms.hierarchy import SpaceHierarchy
from dendrite_lite.rooms.reports import ReportsService
from dendrite_lite.rooms.admin import RoomAdmin
from dendrite_lite.rooms.admin_tasks import AdminTasks
from dendrite_lite.rooms.purge import HistoryPurges
from dendrite_lite.rooms.shutdown import RoomShutdown
from dendrite_lite.events.room_versions import get_room_version
from dendrite_lite.server_status import ServerStatus
from dendrite_lite.sync.filter_store import FilterService
from dendrite_lite.sync.notifier import Notifier
from dendrite_lite.sync.service import SyncService
from dendrite_lite.sync.sliding.extensions import sliding_extensions
from dendrite_lite.sync.sliding.service import SlidingSyncService
from dendrite_lite.sync.sliding.thread_extensions import thread_extensions
from dendrite_lite.sync.tokens import SyncToken
from dendrite_lite.rooms.thread_subscriptions import ThreadSubscriptionsService
from dendrite_lite.rooms.thread_updates import ThreadUpdatesService
from dendrite_lite.users.account_data import AccountDataService
from dendrite_lite.users.presence import JoinPresenceHook, PresenceService
from dendrite_lite.users.openid import OpenIdService
from dendrite_lite.users.user_directory import UserDirectory
from dendrite_lite.users.push_gateway import PushGateway
from dendrite_lite.users.push_rules import PushRulesService
from dendrite_lite.users.pushers import PushersService
from dendrite_lite.users.remote_profiles import RemoteProfiles

if TYPE_CHECKING:
    import httpx

    from dendrite_lite.media.preview import UrlPreviews
    from dendrite_lite.metrics import ServerMetrics

__all__ = ["StartupError", "load_services", "close_services"]


class StartupError(Exception):
    """The server cannot start; the message says what to do about it."""


def _load_key(config: Config) -> ServerKey:
    try:
        return load_signing_key(config.signing_key_path)
    except KeyFileError as e:
        raise StartupError(
            f"{e}. Run `dendrite-lite generate-keys` to create the server's signing key."
        ) from None


async def load_services(config: Config) -> Services:
    key = _load_key(config)
    try:
        storage = await Storage.open(
            config.database_path,
            synchronous=config.database.synchronous,
            readers=config.database.readers,
        )
    except (SchemaTooNew, MigrationError) as e:
        raise StartupError(str(e)) from None
    await _claim_server_name(config, storage)
    notifier = Notifier()
    try:
        push_gateway = PushGateway(storage, ca_file=config.push.ca_file)
    except FileNotFoundError as e:
        raise StartupError(str(e)) from None
    identity = _identity_servers(config, key)
    email_notifier = _email_notifier(config, storage)
    counter = NotificationCounter(
        storage, config.server.server_name,
        on_queued=push_gateway.wake if email_notifier is None else _both(
            push_gateway.wake, email_notifier.wake
        ),
    )
    federation = _federation_services(config, key, storage)
    sender: FederationSender | None = federation["federation_sender"]
    e2ee, e2ee_sync, device_list_edus = _e2ee_services(config, storage, notifier, federation)
    # Joins that start sharing a room make cached remote device lists stale, and send our
    # joining user's device list to the room's new servers.
    guests = GuestAccessRevocation(storage)  # guests leave when guest access ends
    join_presence = JoinPresenceHook()  # servers newly sharing a room exchange presence
    event_rate = EventRate(config.server.server_name)  # the dashboard's events per second
    hooks = [
        counter.prepare, e2ee["remote_device_lists"].prepare, guests.prepare, join_presence.prepare,
        event_rate.prepare,
    ]
    if device_list_edus is not None:
        hooks.append(device_list_edus.prepare)
    try:
        appservices = await load_appservices(config, storage)
    except AppserviceConfigError as e:
        await storage.close()
        raise StartupError(str(e)) from None
    if appservices.sender is not None:  # events for bridges, local and from federation alike
        hooks.append(appservices.sender.prepare)
    event_expiry = EventExpiry(storage)  # MSC2228: events scheduled with their transaction
    hooks.append(event_expiry.prepare)
    hooks.append(cancel_overridden_state)  # MSC4140: others' state cancels delayed state
    metrics = _server_metrics(config)
    commit_hooks: list[CommitHook] = [sender.committed] if sender else []
    commit_hooks.append(event_rate.local_committed)
    if metrics is not None:
        commit_hooks.append(metrics.local_events_committed)
    pipeline = RoomPipeline(
        storage, server_name=config.server.server_name, key=key, notifier=notifier,
        # The sender's hook queues our events for other servers in the events' transaction.
        persist_hooks=hooks + ([sender.prepare] if sender else []),
        commit_hooks=commit_hooks,
    )
    federation.update(_inbound_federation(config, key, storage, notifier, pipeline, hooks, federation))
    if metrics is not None:
        _record_into(metrics, storage, notifier, federation)
    guests.leave = MembershipService(
        storage, pipeline, config.server.server_name, federation["federated_membership"]
    ).leave
    if sender is not None:
        await sender.start()  # resumes delivery queued before a restart; stopped by close_services
    if appservices.sender is not None:
        await appservices.sender.start()  # the same for application services
    if device_list_edus is not None:
        await device_list_edus.flush()  # device list changes committed before a crash
    user_data = await _user_data_services(storage, notifier, EduFanout(sender) if sender else None)
    status = ServerStatus(config, storage, notifier, event_rate, install_log_buffer())
    user_data["receipts"].on_read = push_gateway.badge  # a read clears the apps' badges
    if appservices.sender is not None:  # ephemeral events for bridges (MSC2409)
        user_data["typing"].on_change = appservices.sender.typing_changed
        user_data["receipts"].on_receipt = appservices.sender.receipt_stored
        user_data["presence"].on_change = appservices.sender.presence_changed
        e2ee["to_device"].in_txn = appservices.sender.to_device_in_txn
        e2ee["device_lists"].on_change = appservices.sender.device_list_changed  # MSC3202
        status.appservices = appservices.sender.statuses  # the TUI dashboard's Bridges line
    join_presence.service = user_data["presence"]
    push_gateway.start()  # delivers what was queued before a restart; stopped by close_services
    if email_notifier is not None:
        email_notifier.start()  # mails what fell due while stopped; stopped by close_services
    event_expiry.start()  # expires what fell due while stopped; stopped by close_services
    ratelimits = RateLimits.from_config(config.ratelimit)
    delayed_events = _delayed_events(config, storage, pipeline, ratelimits)
    delayed_events.start()  # sends what fell due while stopped; stopped by close_services
    media = _media_service(config, storage, ratelimits, federation["federation_client"])
    return Services(
        config=config,
        server_key=key,
        storage=storage,
        ratelimits=ratelimits,
        uia=_uia_sessions(config),
        cas=_cas(config, appservices.registry),
        oidc=_oidc(config, appservices.registry),
        notifier=notifier,
        pipeline=pipeline,
        metrics=metrics,
        **user_data,
        **e2ee,
        **_sync_services(
            storage, notifier, user_data, e2ee_sync,
            _backfill(config, storage, federation, pipeline),
        ),
        **federation,
        **_federation_endpoints(storage, federation, user_data, e2ee),
        pushers=PushersService(storage, email=config.email.notifications),
        push_gateway=push_gateway,
        email_notifier=email_notifier,
        notification_list=NotificationList(storage),
        reports=ReportsService(storage, config.server.server_name),
        **_room_admin(config, storage, pipeline, federation, user_data),
        media=media,
        hierarchy=_space_hierarchy(config, storage, federation),
        openid=OpenIdService(storage, config.server.server_name),
        user_directory=UserDirectory(storage),
        event_expiry=event_expiry,
        delayed_events=delayed_events,
        public_rooms=PublicRoomsDirectory(
            storage, config.server.server_name, federation["federation_client"]
        ),
        url_previews=_url_previews(config, storage, media),
        server_status=status,
        backups=_backup_schedule(config),
        media_retention=_media_retention(config, media),
        email_validation=_email_validation(config, storage),
        identity_servers=identity,
        threepid_bindings=ThreepidBindings(storage, identity),
        third_party_invites=ThirdPartyInvites(
            storage, pipeline, identity, server_name=config.server.server_name,
            federation=federation["federated_membership"],
        ),
        **appservices.as_services(),
    )


def _identity_servers(config: Config, key: ServerKey) -> IdentityServers:
    ids = config.identity_server
    try:
        return IdentityServers(
            server_name=config.server.server_name, key=key, verify_tls=ids.verify_tls,
            ca_file=ids.ca_file, ip_allowlist=ids.ip_allowlist,
        )
    except FileNotFoundError as e:
        raise StartupError(str(e)) from None


def _delayed_events(
    config: Config, storage: Storage, pipeline: RoomPipeline, ratelimits: RateLimits
) -> DelayedEvents:
    """MSC4140, sending through the same service as PUT /send and /state."""
    room_events = RoomEventsService(
        storage, pipeline, config.server.server_name, ratelimits.send_user
    )
    # Synapse's rc_delayed_event_mgmt defaults; Element Call restarts a delay every few seconds.
    mgmt = RateLimiter(1.0 if config.ratelimit.enabled else 0.0, 5, action="delayed event")
    return DelayedEvents(
        storage, room_events, max_delay_ms=config.calls.max_event_delay_s * 1000,
        mgmt_limiter=mgmt,
    )


def _uia_sessions(config: Config) -> UiaSessions:
    """UIA sessions, with the captcha checker when registration.recaptcha_* keys are set."""
    reg = config.registration
    if not reg.recaptcha_private_key:
        return UiaSessions()
    return UiaSessions(recaptcha=Recaptcha(reg.recaptcha_private_key, reg.recaptcha_siteverify_api))


def _email_validation(config: Config, storage: Storage) -> EmailValidation:
    """/requestToken and its links; mail goes out only with email.smtp_host set."""
    sender = EmailSender(config.email, config.server.server_name) if config.email.enabled else None
    return EmailValidation(storage, config, sender)


def _email_notifier(config: Config, storage: Storage) -> EmailNotifier | None:
    """The mailer of email pushers, when [email] is set up and email.notif_enabled."""
    if not config.email.notifications:
        return None
    return EmailNotifier(
        storage, EmailSender(config.email, config.server.server_name), config.email,
        server_name=config.server.server_name, public_baseurl=config.public_baseurl,
    )


def _both(first: Callable[[], None], second: Callable[[], None]) -> Callable[[], None]:
    def call() -> None:
        first()
        second()

    return call


def _cas(config: Config, appservices: AppServices) -> CasService | None:
    """Single sign-on through CAS, when cas.server_url is set."""
    if not config.cas.server_url:
        return None
    return CasService(
        config.cas, public_baseurl=config.public_baseurl, server_name=config.server.server_name,
        may_register=lambda user_id: appservices.may_register(None, user_id),
    )


def _oidc(config: Config, appservices: AppServices) -> OidcService | None:
    """Single sign-on through OpenID Connect, when [[oidc_providers]] lists any."""
    if not config.oidc_providers:
        return None
    try:
        return OidcService(
            config.oidc_providers, public_baseurl=config.public_baseurl,
            server_name=config.server.server_name,
            may_register=lambda user_id: appservices.may_register(None, user_id),
        )
    except OidcSetupError as e:
        raise StartupError(str(e)) from None


def _backup_schedule(config: Config) -> BackupSchedule | None:
    if config.backup.directory is None:
        return None
    schedule = BackupSchedule(config, config.backup.directory)
    schedule.start()  # stopped by close_services
    return schedule


def _media_retention(config: Config, media: MediaService) -> RemoteMediaRetention | None:
    if not config.media.remote_media_lifetime_days:
        return None
    admin = MediaAdmin(media.repo, config.server.server_name)
    retention = RemoteMediaRetention(admin, config.media.remote_media_lifetime_days)
    retention.start()  # stopped by close_services
    return retention


def _media_service(
    config: Config, storage: Storage, ratelimits: RateLimits, client: FederationClient | None
) -> MediaService:
    files = FileStore(config.media_path)
    files.prepare()  # also drops the temporary files of uploads a crash cut short
    repo = MediaRepository(storage, files)
    thumbnails = Thumbnails(
        repo, workers=config.media.thumbnail_workers, max_pixels=config.media.max_image_pixels
    )
    remote = None
    if client is not None:  # other servers' media, fetched once and cached (media/remote.py)
        # A Location answer points anywhere: it gets the URL previews' address guard.
        allowlist = config.media.url_preview_ip_allowlist
        downloads = MediaDownloads(client, location_client=lambda: _guarded_client(allowlist))
        remote = RemoteMedia(repo, downloads, max_bytes=config.media.max_upload_bytes)
    return MediaService(
        config, repo, thumbnails, ratelimits.upload_user,
        fetch_remote=remote.fetch if remote is not None else None,
    )


def _guarded_client(allowlist: Sequence[str]) -> httpx.AsyncClient:
    # Imported here, like every outbound client's httpx: not loaded before the first use
    # (tests/unit/test_server_process.py).
    from dendrite_lite.media.preview_guard import AddressPolicy, GuardedTransport
    from dendrite_lite.outbound_http import new_client

    return new_client(GuardedTransport(AddressPolicy(allowlist)))


def _url_previews(config: Config, storage: Storage, media: MediaService) -> UrlPreviews | None:
    """URL previews, their images stored as our media (None unless media.url_preview_enabled)."""
    if not config.media.url_preview_enabled:
        return None
    from dendrite_lite.media.preview import UrlPreviews, repository_image_store

    store = repository_image_store(media.repo, config.server.server_name)
    return UrlPreviews(storage, config.media, store_image=store)


async def _claim_server_name(config: Config, storage: Storage) -> None:
    """Refuse a database made for another server.server_name: every user id, alias and
    signature in it carries the old name. A database without one records the configured name."""
    name = config.server.server_name
    recorded = await storage.db.write(lambda conn: server_identity.claim_server_name(conn, name))
    if recorded != name:
        await storage.close()
        raise StartupError(str(server_identity.ServerNameChanged(config.database_path, recorded, name)))


def _space_hierarchy(
    config: Config, storage: Storage, federation: dict[str, Any]
) -> SpaceHierarchy:
    """Children held elsewhere are asked of their via servers (not without federation)."""
    client: FederationClient | None = federation["federation_client"]
    remote = RemoteHierarchy(client, config.server.server_name) if client is not None else None
    return SpaceHierarchy(storage, fetch_remote=remote.fetch if remote is not None else None)


def _federation_endpoints(
    storage: Storage, federation: dict[str, Any], user_data: dict[str, Any], e2ee: dict[str, Any]
) -> dict[str, Any]:
    """What the federation read and /send endpoints use: room reads for other servers, and
    the transaction receiver (PDUs to the ingest pipeline, EDUs to the user data and
    end-to-end encryption services)."""
    lists: RemoteDeviceLists = e2ee["remote_device_lists"]
    edus = InboundEdus(
        storage, typing=user_data["typing"], receipts=user_data["receipts"],
        presence=user_data["presence"],
        more={
            "m.device_list_update": lists.on_device_list_update,
            "m.signing_key_update": lists.on_signing_key_update,
            "m.direct_to_device": e2ee["to_device"].receive_remote,
        },
    )
    return {
        "federation_reads": FederationReads(storage),
        "federation_txns": TransactionReceiver(storage, federation["federation_ingest"], edus),
    }


def _federation_services(config: Config, key: ServerKey, storage: Storage) -> dict[str, Any]:
    fed = config.federation
    try:
        client = FederationClient.from_config(config, key) if fed.enabled else None
    except FileNotFoundError as e:
        raise StartupError(str(e)) from None
    keyring = Keyring(config.server.server_name, key, storage, client, fed.trusted_key_servers)
    sender = None
    if client is not None:
        sender = FederationSender(
            storage, ClientTransport(client), server_name=config.server.server_name
        )
    return {
        "keyring": keyring,
        "federation_client": client,
        "federation_sender": sender,
        "remote_profiles": RemoteProfiles(storage, client) if client is not None else None,
    }


def _backfill(
    config: Config, storage: Storage, federation: dict[str, Any], pipeline: RoomPipeline
) -> Callable[[str, int], Awaitable[int]] | None:
    """/messages asks other servers for history we lack (None without federation)."""
    client: FederationClient | None = federation["federation_client"]
    if client is None:
        return None
    return Backfiller(
        storage, ClientRequester(client), federation["keyring"],
        server_name=config.server.server_name,
        # Its writes wait for the room's lock, like /send's, so both never store one event twice.
        room_lock=pipeline.room_lock,
    ).backfill


def _inbound_federation(
    config: Config,
    key: ServerKey,
    storage: Storage,
    notifier: Notifier,
    pipeline: RoomPipeline,
    persist_hooks: list[PersistHook],
    federation: dict[str, Any],
) -> dict[str, Any]:
    """Events from other servers (the ingest pipeline, sharing the local pipeline's room locks
    and persist hooks: unread counts, device list staleness) and membership across servers.
    None of it without federation."""
    client: FederationClient | None = federation["federation_client"]
    if client is None:
        return {"federation_ingest": None, "federated_membership": None}
    ingest = FederationIngest(
        storage, key_store=federation["keyring"], requester=ClientRequester(client),
        notifier=notifier, room_lock=pipeline.room_lock, persist_hooks=persist_hooks,
    )
    membership = FederatedMembership.build(
        storage=storage, notifier=notifier, key_store=federation["keyring"], ingest=ingest,
        server_name=config.server.server_name, key=key, client=client,
        sender=federation["federation_sender"],
        complexity_limit=ComplexityLimit(
            config.federation.max_room_complexity, config.federation.room_complexity_admins_can_join
        ),
    )
    return {"federation_ingest": ingest, "federated_membership": membership}


def _e2ee_services(
    config: Config, storage: Storage, notifier: Notifier, federation: dict[str, Any]
) -> tuple[dict[str, Any], E2eeSync, DeviceListEdus | None]:
    """End-to-end encryption: keys, device lists, to-device messages, and their /sync
    sections; with federation, other servers' users' keys and device lists, and our changes
    and to-device messages to their servers (DeviceListEdus, flushed at start-up)."""
    name = config.server.server_name
    sender: FederationSender | None = federation["federation_sender"]
    client: FederationClient | None = federation["federation_client"]
    list_edus = DeviceListEdus(storage, sender) if sender is not None else None
    device_lists = DeviceListService(
        storage, notifier, on_local_change=list_edus.on_local_change if list_edus else None
    )
    requests = E2eeRequests(client) if client is not None else None
    remote_lists = RemoteDeviceLists(
        storage, device_lists, server_name=name,
        fetch_user_devices=requests.user_devices if requests else None,
    )
    remote_keys = FederatedKeys(storage, remote_lists, requests) if requests else None
    keys = KeysService(storage, device_lists, server_name=name, remote=remote_keys)
    to_device = ToDeviceService(
        storage, notifier, server_name=name, remote=ToDeviceEdus(sender) if sender else None
    )
    services = {
        "federation_keys": FederationKeyAnswers(storage, server_name=name),
        "remote_device_lists": remote_lists,
        "device_list_edus": list_edus,
        "device_lists": device_lists, "keys": keys, "to_device": to_device,
        "cross_signing": CrossSigningService(storage, device_lists),
        "key_backup": KeyBackupService(storage),
        "dehydrated_devices": DehydratedDevicesService(storage, device_lists),
    }
    return services, E2eeSync(storage, keys, device_lists, to_device), list_edus


def _sync_services(
    storage: Storage,
    notifier: Notifier,
    user_data: dict[str, Any],
    e2ee: E2eeSync | None = None,
    backfill: Callable[[str, int], Awaitable[int]] | None = None,
) -> dict[str, Any]:
    filters = FilterService(storage)
    sync = SyncService(
        storage,
        notifier,
        filters,
        account_data=user_data["account_data"],
        receipts=user_data["receipts"],
        typing=user_data["typing"],
        presence=user_data["presence"],
        e2ee=e2ee,
    )
    extensions = sliding_extensions(
        storage, e2ee=e2ee, account_data=user_data["account_data"],
        receipts=user_data["receipts"], typing=user_data["typing"],
    )
    # Threads (MSC4308, MSC4360): sync/sliding/thread_extensions.py
    thread_subs: ThreadSubscriptionsService = user_data["thread_subscriptions"]
    extensions += thread_extensions(storage, thread_subs, ThreadUpdatesService(storage))
    sliding_sync = SlidingSyncService(
        storage, notifier, _with_thread_subscriptions(sync.current_token, thread_subs),
        presence=user_data["presence"],
        extensions=extensions,
    )
    return {
        "filters": filters,
        "sync": sync,
        "sliding_sync": sliding_sync,
        "history": HistoryService(storage, backfill=backfill),
    }


def _with_thread_subscriptions(
    current_token: Callable[[], Awaitable[SyncToken]], thread_subs: ThreadSubscriptionsService
) -> Callable[[], Awaitable[SyncToken]]:
    """Sliding sync's stream positions: /sync's and the thread-subscriptions stream (which only
    sliding sync serves)."""

    async def token() -> SyncToken:
        return dataclasses.replace(
            await current_token(), thread_subscriptions=thread_subs.current_position()
        )

    return token


async def _user_data_services(
    storage: Storage, notifier: Notifier, edus: EduFanout | None
) -> dict[str, Any]:
    """`edus` (None without federation) sends our users' typing, receipts and presence to
    other servers."""
    account_data = await AccountDataService.open(storage, notifier)
    receipts_svc = await ReceiptsService.open(storage, notifier, edus=edus)
    presence_svc = await PresenceService.open(storage, notifier, edus=edus)
    presence_svc.start()  # idle and sync timeouts; stopped by close_services
    return {
        "account_data": account_data,
        "push_rules": PushRulesService(account_data),
        "receipts": receipts_svc,
        "read_markers": ReadMarkersService(receipts_svc, account_data),
        "typing": TypingService(storage, notifier, edus=edus),
        "presence": presence_svc,
        "thread_subscriptions": await ThreadSubscriptionsService.open(storage, notifier),
    }


def _room_admin(
    config: Config,
    storage: Storage,
    pipeline: RoomPipeline,
    federation: dict[str, Any],
    user_data: dict[str, Any],
) -> dict[str, Any]:
    """The admin API's rooms; deleting a room moves members as the client API would."""
    name = config.server.server_name

    def membership() -> MembershipService:
        return MembershipService(
            storage, pipeline, name, federation["federated_membership"],
            default_room_version=get_room_version(config.server.default_room_version),
            account_data=user_data["account_data"],
        )

    return {
        "room_admin": RoomAdmin(storage, name, pipeline=pipeline, membership=membership),
        "room_shutdown": RoomShutdown(
            storage, name, pipeline=pipeline, membership=membership, tasks=AdminTasks()
        ),
        "history_purges": HistoryPurges(
            storage, name, room_lock=pipeline.room_lock, tasks=AdminTasks()
        ),
    }


async def close_services(svc: Services) -> None:
    """Stop the services' timers and tasks before storage closes under them."""
    if svc.event_expiry is not None:
        await svc.event_expiry.close()
    if svc.delayed_events is not None:  # a send in flight writes to storage
        await svc.delayed_events.close()
    if svc.history_purges is not None:  # background admin jobs write to storage
        await svc.history_purges.close()
    if svc.room_shutdown is not None:
        await svc.room_shutdown.close()
    if svc.backups is not None:
        await svc.backups.stop()
    if svc.media_retention is not None:  # a pass deletes rows and files
        await svc.media_retention.close()
    if svc.typing is not None:
        svc.typing.close()
    if svc.media is not None:
        svc.media.thumbnails.close()
    if svc.presence is not None:
        await svc.presence.close()
    if svc.push_gateway is not None:
        await svc.push_gateway.stop()
    if svc.email_notifier is not None:  # a pass writes positions to storage
        await svc.email_notifier.close()
    if svc.remote_device_lists is not None:  # resyncs in flight write to storage
        await svc.remote_device_lists.close()
    if svc.device_list_edus is not None:
        await svc.device_list_edus.close()
    if svc.federation_sender is not None:  # before the client its requests use
        await svc.federation_sender.stop()
    if svc.federation_client is not None:
        await svc.federation_client.aclose()
    if svc.appservice_sender is not None:
        await svc.appservice_sender.stop()
    if svc.appservice_requests is not None:
        await svc.appservice_requests.http.aclose()
    if svc.url_previews is not None:
        await svc.url_previews.aclose()
    if svc.identity_servers is not None:
        await svc.identity_servers.aclose()
    await svc.uia.aclose()
    if svc.cas is not None:
        await svc.cas.aclose()
    if svc.oidc is not None:
        await svc.oidc.aclose()


def _server_metrics(config: Config) -> ServerMetrics | None:
    if not config.metrics.enabled:
        return None
    # Imported only with metrics on: prometheus-client is memory a Pi without them keeps.
    from dendrite_lite.metrics import ServerMetrics

    return ServerMetrics()


def _record_into(
    metrics: ServerMetrics, storage: Storage, notifier: Notifier, federation: dict[str, Any]
) -> None:
    """Hand the metrics' recording callbacks to the writer and the federation services (the
    room pipeline got its commit hook when built), and what is counted when scraped."""
    storage.db.on_commit = metrics.commit_observed
    metrics.watch_sync_waiters(notifier.waiting)
    sender: FederationSender | None = federation["federation_sender"]
    if sender is not None:
        sender.on_transaction = metrics.federation_transaction
        metrics.watch_federation_queues(sender.queue_lengths)
    ingest: FederationIngest | None = federation["federation_ingest"]
    if ingest is not None:
        ingest.on_persisted = metrics.remote_event_persisted
    membership: FederatedMembership | None = federation["federated_membership"]
    if membership is not None and membership.joins is not None:
        membership.joins.on_finished = metrics.remote_join_finished
