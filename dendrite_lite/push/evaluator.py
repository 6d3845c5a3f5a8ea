"""Evaluating push rules against an event for one user (push.md §Push Rules, §Conditions).

Pure, no I/O. The hot path is "a message arrived in a room of N members": the caller prepares
the event once (`prepare_event`) and evaluates it for every member with that member's compiled
rules (`compiled_for_user`). Three things keep that cheap:
- rules are compiled once into tuples of predicate closures (globs precompiled, paths split),
  disabled rules and rules with unknown or malformed conditions are dropped at compile time;
- compiled rule sets are cached by their content (user ID + canonical JSON of the user's
  document), so there is nothing to invalidate: an edited document is simply another key;
- a PreparedEvent memoises property lookups and the results of event-only conditions, and
  identical conditions compile to one shared predicate, so the default rules' `type` checks run
  once per event, not once per member.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from dendrite_lite.push.conditions import (
    KNOWN_CONDITION_KINDS,
    condition_problem,
    parse_member_count,
    same_scalar,
    split_key,
)
from dendrite_lite.push.default_rules import KINDS, LEGACY_MENTION_RULE_IDS
from dendrite_lite.push.glob import Matcher, compile_glob, compile_word_literal
from dendrite_lite.push.ruleset import full_ruleset

__all__ = [
    "Actions",
    "NO_ACTIONS",
    "PreparedEvent",
    "CompiledRuleset",
    "prepare_event",
    "compile_ruleset",
    "compiled_for_user",
    "actions_from_list",
    "evaluate",
]

_MISSING = object()
_BODY_PATH = ("content", "body")
_MENTIONS_PATH = ("content", "m.mentions")
# m.room.power_levels schema: `notifications.room` defaults to 50; the spec gives no other keys a
# default, and 50 is what other servers use for them too.
_DEFAULT_NOTIFICATION_LEVEL = 50
_STRINGY_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


@dataclass(frozen=True, slots=True)
class Actions:
    """What the matching rule asks for.

    Count an unread notification when `notify`, and a highlight when `notify and highlight`
    (/sync's highlight_count counts notifications that carry the highlight flag). `tweaks` holds
    every set_tweak for the push gateway; `rule_id`/`kind` name the rule (None when none matched).
    """

    notify: bool
    highlight: bool
    sound: str | None
    tweaks: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    rule_id: str | None = None
    kind: str | None = None


NO_ACTIONS = Actions(notify=False, highlight=False, sound=None)


def actions_from_list(actions: Any, rule_id: str | None = None, kind: str | None = None) -> Actions:
    """Interpret an `actions` array; historical and unknown actions are ignored."""
    notify = False
    tweaks: dict[str, Any] = {}
    for action in actions if isinstance(actions, list) else ():
        if action == "notify":
            notify = True
        elif isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            if "value" in action:
                tweaks[name] = action["value"]
            elif name == "highlight":
                # push.md §Actions: a highlight tweak without a value means true.
                tweaks[name] = True
    sound = tweaks.get("sound")
    return Actions(
        notify=notify,
        highlight=tweaks.get("highlight") is True,
        sound=sound if isinstance(sound, str) else None,
        tweaks=MappingProxyType(tweaks),
        rule_id=rule_id,
        kind=kind,
    )


class PreparedEvent:
    """A client-format event with memoised property lookups and glob results.

    Prepare once per event and reuse it for every member of the room. Not thread-safe (nothing
    here needs it: one event loop).
    """

    __slots__ = ("event", "_values", "memo")

    def __init__(self, event: Mapping[str, Any]) -> None:
        self.event = event
        self._values: dict[tuple[str, ...], Any] = {}
        # Results of event-only predicates, keyed by the (shared) predicate object.
        self.memo: dict[object, bool] = {}

    def value(self, path: tuple[str, ...]) -> Any:
        """The property at `path`, or the module's _MISSING sentinel when absent."""
        try:
            return self._values[path]
        except KeyError:
            pass
        current: Any = self.event
        for part in path:
            if not isinstance(current, Mapping):
                current = _MISSING
                break
            current = current.get(part, _MISSING)
            if current is _MISSING:
                break
        self._values[path] = current
        return current


def _glob_value(value: Any, matcher: Matcher) -> bool:
    # push.md: an absent or non-string property never matches, not even `*`.
    return isinstance(value, str) and matcher(value)


def prepare_event(event: Mapping[str, Any] | PreparedEvent) -> PreparedEvent:
    return event if isinstance(event, PreparedEvent) else PreparedEvent(event)


class _Context:
    __slots__ = ("event", "user_id", "display_name", "member_count", "sender_level", "levels")

    def __init__(
        self,
        event: PreparedEvent,
        user_id: str,
        display_name: str | None,
        member_count: int,
        sender_level: int | float,
        levels: Mapping[str, Any] | None,
    ) -> None:
        self.event = event
        self.user_id = user_id
        self.display_name = display_name
        self.member_count = member_count
        self.sender_level = sender_level
        self.levels = levels


Predicate = Callable[[_Context], bool]


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    conditions: tuple[Predicate, ...]
    actions: Actions
    legacy_mention: bool = False  # skipped for an event with `m.mentions` (default_rules.py)


@dataclass(frozen=True, slots=True)
class CompiledRuleset:
    """Enabled, evaluable rules in priority order (override ... underride)."""

    rules: tuple[_CompiledRule, ...]


def _notification_level(levels: Mapping[str, Any] | None, key: str) -> int:
    notifications = levels.get("notifications") if levels is not None else None
    if isinstance(notifications, Mapping):
        value = notifications.get(key)
        if type(value) is int:
            return value
        # Room versions before 10 allow integer strings; the auth rules already rejected
        # anything else, so a leftover oddity falls back to the default.
        if isinstance(value, str) and _STRINGY_INT.fullmatch(value):
            return int(value)
    return _DEFAULT_NOTIFICATION_LEVEL


_COMPARE: Mapping[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _display_name_in_body(ctx: _Context) -> bool:
    body = ctx.event.value(_BODY_PATH)
    name = ctx.display_name
    if not name or not isinstance(body, str):
        return False
    return compile_word_literal(name)(body)


def _event_only(test: Callable[[PreparedEvent], bool]) -> Predicate:
    """A predicate that depends on the event alone, memoised in the PreparedEvent.

    The predicate object itself is the memo key: identical conditions in different users' rules
    compile to the same object (see _compile_condition), so a room's members share one result.
    """

    def predicate(ctx: _Context) -> bool:
        memo = ctx.event.memo
        result = memo.get(predicate)
        if result is None:
            result = memo[predicate] = test(ctx.event)
        return result

    return predicate


def _compile_condition(condition: Mapping[str, Any]) -> Predicate | None:
    """A predicate, or None when the condition can never match (unknown kind, malformed)."""
    kind = condition.get("kind")
    if kind not in KNOWN_CONDITION_KINDS or condition_problem(condition) is not None:
        return None
    if kind == "contains_display_name":
        return _display_name_in_body
    # JSON text as the cache key keeps True and 1 apart, which a tuple key would not.
    return _compile_known(json.dumps(condition, sort_keys=True))


@lru_cache(maxsize=8192)
def _compile_known(condition_json: str) -> Predicate:
    condition = json.loads(condition_json)
    kind = condition["kind"]
    if kind == "event_match":
        path = split_key(condition["key"])
        matcher = compile_glob(condition["pattern"], word_boundary=path == _BODY_PATH)
        return _event_only(lambda event: _glob_value(event.value(path), matcher))
    if kind == "event_property_is":
        path, wanted = split_key(condition["key"]), condition["value"]
        return _event_only(lambda event: same_scalar(event.value(path), wanted))
    if kind == "event_property_contains":
        path, wanted = split_key(condition["key"]), condition["value"]

        def contains(event: PreparedEvent) -> bool:
            values = event.value(path)
            return isinstance(values, list) and any(same_scalar(v, wanted) for v in values)

        return _event_only(contains)
    if kind == "room_member_count":
        parsed = parse_member_count(condition["is"])
        assert parsed is not None  # condition_problem checked it
        compare, number = _COMPARE[parsed[0]], parsed[1]
        return lambda ctx: compare(ctx.member_count, number)
    key = condition["key"]  # sender_notification_permission
    return lambda ctx: ctx.sender_level >= _notification_level(ctx.levels, key)


def _equals(path: tuple[str, ...], wanted: str) -> Predicate:
    return _event_only(lambda event: event.value(path) == wanted)


def _compile_rule(kind: str, rule: Mapping[str, Any]) -> _CompiledRule | None:
    if rule.get("enabled", True) is not True:
        return None
    rule_id = rule.get("rule_id")
    conditions: list[Predicate | None]
    if kind == "content":
        pattern = rule.get("pattern")
        if not isinstance(pattern, str):
            return None
        as_condition = {"kind": "event_match", "key": "content.body", "pattern": pattern}
        conditions = [_compile_condition(as_condition)]
    elif kind == "room":
        conditions = [_equals(("room_id",), rule_id)] if isinstance(rule_id, str) else [None]
    elif kind == "sender":
        conditions = [_equals(("sender",), rule_id)] if isinstance(rule_id, str) else [None]
    else:
        raw = rule.get("conditions", [])
        conditions = [
            _compile_condition(c) if isinstance(c, Mapping) else None
            for c in (raw if isinstance(raw, list) else [None])
        ]
    if any(c is None for c in conditions):
        return None  # push.md: unrecognised conditions MUST NOT match, disabling the rule
    actions = actions_from_list(rule.get("actions"), rule_id if isinstance(rule_id, str) else None, kind)
    legacy = (kind, rule_id) in LEGACY_MENTION_RULE_IDS
    return _CompiledRule(tuple(c for c in conditions if c is not None), actions, legacy)


def compile_ruleset(ruleset: Mapping[str, Any]) -> CompiledRuleset:
    """Compile a ruleset in GET /pushrules/ shape ({"global": {...}} or the inner object)."""
    inner = ruleset.get("global", ruleset)
    compiled: list[_CompiledRule] = []
    for kind in KINDS:
        for rule in inner.get(kind) or ():
            if isinstance(rule, Mapping):
                result = _compile_rule(kind, rule)
                if result is not None:
                    compiled.append(result)
    return CompiledRuleset(tuple(compiled))


def _fingerprint(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@lru_cache(maxsize=4096)
def _compiled_for_user(user_id: str, fingerprint: str) -> CompiledRuleset:
    return compile_ruleset(full_ruleset(user_id, json.loads(fingerprint)))


@lru_cache(maxsize=1024)
def _compiled_from_json(fingerprint: str) -> CompiledRuleset:
    return compile_ruleset(json.loads(fingerprint))


def compiled_for_user(user_id: str, user_rules: Mapping[str, Any]) -> CompiledRuleset:
    """The compiled rules of `user_id` (defaults + their stored document), cached by content."""
    if not user_rules.get("custom") and not user_rules.get("defaults"):
        return _compiled_for_user(user_id, "{}")  # most users never edit: skip the encoder
    return _compiled_for_user(user_id, _fingerprint(user_rules))


def evaluate(
    ruleset: CompiledRuleset | Mapping[str, Any],
    event: Mapping[str, Any] | PreparedEvent,
    *,
    user_id: str,
    display_name: str | None = None,
    room_member_count: int,
    sender_power_level: int | float,
    power_levels_content: Mapping[str, Any] | None = None,
) -> Actions:
    """The actions of the first matching rule for `user_id`, or NO_ACTIONS.

    `ruleset` is best a CompiledRuleset from compiled_for_user; a GET-shaped dict also works but
    is fingerprinted on every call. `event` is a client-format event (or a PreparedEvent shared
    across the room's members). The user's own events never notify (push.md §Push Rules).
    """
    prepared = prepare_event(event)
    if prepared.value(("sender",)) == user_id:
        return NO_ACTIONS
    compiled = ruleset if isinstance(ruleset, CompiledRuleset) else _compiled_from_json(_fingerprint(ruleset))
    ctx = _Context(prepared, user_id, display_name, room_member_count, sender_power_level, power_levels_content)
    has_mentions = prepared.value(_MENTIONS_PATH) is not _MISSING
    for rule in compiled.rules:
        if has_mentions and rule.legacy_mention:
            continue
        for condition in rule.conditions:
            if not condition(ctx):
                break
        else:
            return rule.actions
    return NO_ACTIONS
