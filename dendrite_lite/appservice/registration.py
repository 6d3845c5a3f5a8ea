"""Application service registration files: the YAML every bridge generates and Synapse reads.

Spec: application-service-api §Registration. A file looks like

    id: whatsapp
    url: http://127.0.0.1:29318          # null: the AS receives nothing (it only sends)
    as_token: <the AS's token for us>
    hs_token: <our token for the AS>
    sender_localpart: whatsappbot
    namespaces:
      users: [{exclusive: true, regex: '@whatsapp_.*:example\\.org'}]
      aliases: []
      rooms: []
    rate_limited: false
    protocols: [whatsapp]
    receive_ephemeral: true              # MSC2409 (also de.sorunome.msc2409.push_ephemeral)

`load_registrations(paths, server_name)` reads and checks them all, raising RegistrationError
whose message names the file and the field. Regexes are matched from the start of the id
(Python `re.match`), as Synapse does, so `@irc_.*` matches `@irc_bob:example.org`. Two
registrations overlap when an id lies in one's exclusive namespace and in any namespace of the
other of the same kind, decided on the regexes' languages (appservice/overlap.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dendrite_lite.appservice.overlap import Overlap, Undecided, sample_ids, shared_id

__all__ = [
    "Namespace",
    "Registration",
    "RegistrationError",
    "load_registration",
    "load_registrations",
    "parse_registration",
]

NAMESPACE_KINDS = ("users", "aliases", "rooms")
# Keys bridges use for the MSCs we implement, besides the stable names.
_EPHEMERAL_KEYS = ("receive_ephemeral", "de.sorunome.msc2409.push_ephemeral", "push_ephemeral")
_MSC3202_KEYS = ("org.matrix.msc3202", "msc3202")
_MSC4190_KEYS = ("io.element.msc4190", "org.matrix.msc4190")
_LOCALPART_RE = re.compile(r"[a-z0-9._=/+-]+")

log = logging.getLogger(__name__)


class RegistrationError(Exception):
    """A registration file problem, phrased as `file: field: what is wrong`."""


@dataclass(frozen=True, slots=True)
class Namespace:
    regex: str
    exclusive: bool
    pattern: re.Pattern[str] = field(compare=False, repr=False)

    def matches(self, value: str) -> bool:
        return self.pattern.match(value) is not None


@dataclass(frozen=True, slots=True)
class Registration:
    id: str
    url: str | None
    as_token: str
    hs_token: str
    sender_localpart: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    receive_ephemeral: bool = False  # MSC2409: typing, receipts, presence (and to-device)
    device_lists: bool = False  # MSC3202: device list changes and OTK counts
    device_management: bool = False  # MSC4190: the AS manages its users' devices itself
    source: Path | None = None

    def sender(self, server_name: str) -> str:
        return f"@{self.sender_localpart}:{server_name}"

    def namespace(self, kind: str) -> tuple[Namespace, ...]:
        return getattr(self, kind)  # type: ignore[no-any-return]

    def matches(self, kind: str, value: str, *, exclusive_only: bool = False) -> bool:
        return any(
            ns.matches(value) for ns in self.namespace(kind) if ns.exclusive or not exclusive_only
        )


def load_registration(path: Path) -> Registration:
    import yaml  # only servers with appservices pay for the YAML parser

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistrationError(f"{path}: registration file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RegistrationError(f"{path}: cannot read registration file: {e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise RegistrationError(f"{path}: invalid YAML: {e}") from None
    return parse_registration(data, path)


def parse_registration(data: Any, source: Path | None = None) -> Registration:
    where = str(source) if source is not None else "registration"
    if not isinstance(data, Mapping):
        raise RegistrationError(f"{where}: expected a mapping of registration fields")

    def fail(key: str, why: str) -> RegistrationError:
        return RegistrationError(f"{where}: {key}: {why}")

    def required_string(key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise fail(key, f"required, a non-empty string (got {value!r})")
        return value

    reg_id, as_token, hs_token = (required_string(k) for k in ("id", "as_token", "hs_token"))
    localpart = required_string("sender_localpart")
    if not _LOCALPART_RE.fullmatch(localpart):
        raise fail("sender_localpart", f"{localpart!r} is not a valid user localpart")
    url = data.get("url")
    if url is not None and (not isinstance(url, str) or not re.match(r"https?://", url)):
        raise fail("url", f"expected an http(s) URL or null, got {url!r}")
    namespaces = data.get("namespaces", {})
    if namespaces is None:
        namespaces = {}
    if not isinstance(namespaces, Mapping):
        raise fail("namespaces", "expected a mapping with users, aliases and rooms")
    parsed = {
        kind: _namespaces(namespaces.get(kind) or [], f"namespaces.{kind}", fail)
        for kind in NAMESPACE_KINDS
    }
    protocols = data.get("protocols") or []
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        raise fail("protocols", f"expected a list of strings, got {protocols!r}")
    return Registration(
        id=reg_id, url=url.rstrip("/") if url else None, as_token=as_token, hs_token=hs_token,
        sender_localpart=localpart, **parsed,
        rate_limited=_flag(data, ("rate_limited",), fail, default=True),
        protocols=tuple(protocols),
        receive_ephemeral=_flag(data, _EPHEMERAL_KEYS, fail),
        device_lists=_flag(data, _MSC3202_KEYS, fail),
        device_management=_flag(data, _MSC4190_KEYS, fail),
        source=source,
    )


def _flag(data: Mapping[str, Any], keys: Sequence[str], fail: Any, *, default: bool = False) -> bool:
    for key in keys:
        if key in data and data[key] is not None:
            if not isinstance(data[key], bool):
                raise fail(key, f"expected true or false, got {data[key]!r}")
            return bool(data[key])
    return default


def _namespaces(raw: Any, key: str, fail: Any) -> tuple[Namespace, ...]:
    if not isinstance(raw, list):
        raise fail(key, "expected a list of {regex, exclusive} entries")
    out = []
    for i, entry in enumerate(raw):
        here = f"{key}[{i}]"
        if not isinstance(entry, Mapping):
            raise fail(here, "expected a mapping with regex and exclusive")
        regex = entry.get("regex")
        if not isinstance(regex, str) or not regex:
            raise fail(f"{here}.regex", f"required, a non-empty string (got {regex!r})")
        exclusive = entry.get("exclusive", False)
        if not isinstance(exclusive, bool):
            raise fail(f"{here}.exclusive", f"expected true or false, got {exclusive!r}")
        try:
            pattern = re.compile(regex)
        except re.error as e:
            raise fail(f"{here}.regex", f"{regex!r} is not a valid regular expression: {e}") from None
        out.append(Namespace(regex, exclusive, pattern))
    return tuple(out)


def load_registrations(paths: Iterable[Path], server_name: str) -> tuple[Registration, ...]:
    """Every file, checked on its own and against the others: ids and tokens are unique, no
    id lies both in one registration's exclusive namespace and in another's namespace of the
    same kind, and no AS's sender lies in another's exclusive user namespace."""
    registrations = tuple(load_registration(Path(p)) for p in paths)
    seen: dict[tuple[str, str], Registration] = {}
    for reg in registrations:
        for key in ("id", "as_token"):
            other = seen.setdefault((key, getattr(reg, key)), reg)
            if other is not reg:
                raise RegistrationError(
                    f"{reg.source}: {key}: the same {key} as {other.source}; each appservice "
                    f"needs its own"
                )
    overlaps = _Overlaps(server_name)
    for i, reg in enumerate(registrations):
        for other in registrations[i + 1:]:
            _check_overlap(reg, other, server_name, overlaps)
            _check_overlap(other, reg, server_name, overlaps)
    return registrations


def _check_overlap(
    reg: Registration, other: Registration, server_name: str, overlaps: _Overlaps
) -> None:
    # The other AS's own user first: the plainest overlap, and the one most often meant.
    sender = other.sender(server_name)
    for index, ns in enumerate(reg.users):
        if ns.exclusive and ns.matches(sender):
            raise RegistrationError(
                f"{reg.source}: namespaces.users[{index}].regex: {ns.regex!r} claims "
                f"{sender}, the sender of appservice {other.id!r} ({other.source}), exclusively"
            )
    for kind in NAMESPACE_KINDS:
        for index, ns in enumerate(reg.namespace(kind)):
            if not ns.exclusive:
                continue
            for theirs in other.namespace(kind):
                found = overlaps.find(ns, theirs, f"{reg.source}: namespaces.{kind}[{index}].regex", other)
                if found is None:
                    continue
                example = f", e.g. {found.example!r}" if found.example else ""
                raise RegistrationError(
                    f"{reg.source}: namespaces.{kind}[{index}].regex: {ns.regex!r} is exclusive "
                    f"here but overlaps {other.source}'s {theirs.regex!r} (appservice "
                    f"{other.id!r}){example}"
                )


class _Overlaps:
    """Whether two namespaces share an id, each pair decided once (appservice/overlap.py). A
    pair the checker cannot decide is logged and compared the old way: identical regexes, and
    ids either regex is sure to match; a file is never refused for the checker's own limits."""

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        self._known: dict[frozenset[str], Overlap | None] = {}

    def find(self, ns: Namespace, theirs: Namespace, where: str, other: Registration) -> Overlap | None:
        key = frozenset((ns.regex, theirs.regex))
        if key not in self._known:
            self._known[key] = self._decide(ns, theirs, where, other)
        return self._known[key]

    def _decide(self, ns: Namespace, theirs: Namespace, where: str, other: Registration) -> Overlap | None:
        try:
            return shared_id(ns.regex, theirs.regex)
        except Undecided as e:
            log.warning(
                "%s: cannot tell whether %r overlaps %s's %r (appservice %r): %s; compared "
                "as identical regexes and on sample ids only",
                where, ns.regex, other.source, theirs.regex, other.id, e,
            )
        except Exception:  # the checker's own failure must not stop the server
            log.exception(
                "%s: overlap check of %r and %s's %r failed; compared as identical regexes and "
                "on sample ids only", where, ns.regex, other.source, theirs.regex,
            )
        if ns.regex == theirs.regex:
            return Overlap(None)
        for sample in sample_ids(ns.regex, self._server_name) + sample_ids(theirs.regex, self._server_name):
            if ns.matches(sample) and theirs.matches(sample):
                return Overlap(sample)
        return None
