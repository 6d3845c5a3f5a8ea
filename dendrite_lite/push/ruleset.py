"""A user's push rules: the server defaults plus what the user changed (push.md §Push Rules: API).

Pure data, no I/O. The storage layer persists `user_rules` as one JSON document per user:

    {
      "custom":   {"override": [rule, ...], "content": [...], ...},   # most important first
      "defaults": {"override": {".m.rule.master": {"enabled": true}},  # only what was changed
                   "underride": {".m.rule.message": {"actions": []}}}
    }

A custom rule is stored as `{"rule_id", "enabled", "actions"}` plus `conditions` (override,
underride) or `pattern` (content); room and sender rules need nothing else because their rule_id
is the room or user ID they apply to. Missing keys mean "nothing changed", so `{}` is a valid
value for a user who never edited anything.

Every edit returns a new document and leaves its argument untouched, so a caller can keep the old
one (or a compiled form of it) until the new one is committed.

Errors (pushrules.yaml names only some errcodes; the rest follow the error's nature):
- M_NOT_FOUND 404: no such rule (GET, DELETE, /enabled, /actions).
- M_INVALID_PARAM 400: an unknown kind; a rule ID that is reserved ('.' prefix), contains a slash
  or backslash, or is not a user ID for a sender rule; placing a rule relative to a
  predefined rule; deleting a predefined rule.
- M_BAD_JSON 400: a body of the wrong shape (missing or mistyped actions, pattern, conditions).
- M_UNKNOWN 400: `before`/`after` names no user-defined rule (the spec's own example).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from dendrite_lite.errors import Errcode, MatrixError
from dendrite_lite.push.conditions import condition_problem
from dendrite_lite.push.default_rules import (
    KINDS,
    MASTER_RULE_ID,
    default_rule,
    default_rules,
    is_default_rule_id,
)

__all__ = [
    "KINDS",
    "check_kind",
    "empty_user_rules",
    "add_rule",
    "delete_rule",
    "set_enabled",
    "set_actions",
    "get_rule",
    "full_ruleset",
    "clean_actions",
]

# push.md §Historical Actions: clients and servers MUST ignore them. The evaluator does
# (push/evaluator.py actions_from_list); they are stored as sent, so a client reads back the
# actions it set, as from Synapse (SyTest 61push/05_set_actions.pl sets ["dont_notify"]).
_HISTORICAL_ACTIONS = frozenset({"dont_notify", "coalesce"})


def empty_user_rules() -> dict[str, Any]:
    return {"custom": {}, "defaults": {}}


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MatrixError(Errcode.INVALID_PARAM, f"Unknown push rule kind: {kind!r}")


def _not_found() -> MatrixError:
    return MatrixError(Errcode.NOT_FOUND, "The push rule was not found.")


def clean_actions(actions: Any) -> list[Any]:
    """Validated actions (historical ones kept, see above); M_BAD_JSON when malformed.

    Only `notify` and `set_tweak` objects are defined; anything else is refused, since a rule
    whose actions we cannot honour would silently do nothing.
    """
    if not isinstance(actions, list):
        raise MatrixError(Errcode.BAD_JSON, "'actions' must be an array")
    cleaned: list[Any] = []
    for action in actions:
        if action == "notify" or (isinstance(action, str) and action in _HISTORICAL_ACTIONS):
            cleaned.append(action)
        elif isinstance(action, dict) and isinstance(action.get("set_tweak"), str):
            cleaned.append(copy.deepcopy(action))
        else:
            raise MatrixError(Errcode.BAD_JSON, f"Unrecognised push rule action: {action!r}")
    return cleaned


def _check_new_rule_id(kind: str, rule_id: str) -> None:
    if not rule_id:
        raise MatrixError(Errcode.INVALID_PARAM, "The rule ID must not be empty")
    if rule_id.startswith("."):
        raise MatrixError(
            Errcode.INVALID_PARAM, "Rule IDs starting with '.' are reserved for server-default rules"
        )
    if "/" in rule_id or "\\" in rule_id:
        raise MatrixError(Errcode.INVALID_PARAM, "Rule IDs may not contain slashes or backslashes")
    # push.md: the rule_id of a sender rule is the user ID it applies to. That of a room rule is
    # the room ID, but any other ID is accepted, as by Synapse: such a rule never matches, and
    # SyTest (61push/02add_rules.pl) and older clients name room rules with aliases.
    if kind == "sender" and not (rule_id.startswith("@") and ":" in rule_id):
        raise MatrixError(Errcode.INVALID_PARAM, "A sender rule's ID must be a user ID")


def _rule_from_body(kind: str, rule_id: str, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise MatrixError(Errcode.BAD_JSON, "The push rule must be a JSON object")
    if "actions" not in body:
        raise MatrixError(Errcode.BAD_JSON, "The push rule needs 'actions'")
    rule: dict[str, Any] = {
        "rule_id": rule_id,
        "enabled": True,
        "actions": clean_actions(body["actions"]),
    }
    if kind == "content":
        if not isinstance(body.get("pattern"), str):
            raise MatrixError(Errcode.BAD_JSON, "A content rule needs a string 'pattern'")
        rule["pattern"] = body["pattern"]
    elif kind in ("override", "underride"):
        # pushrules.yaml only requires `actions`; a rule with no conditions always matches.
        conditions = body.get("conditions", [])
        if not isinstance(conditions, list):
            raise MatrixError(Errcode.BAD_JSON, "'conditions' must be an array")
        for condition in conditions:
            problem = condition_problem(condition)
            if problem is not None:
                raise MatrixError(Errcode.BAD_JSON, f"Invalid condition: {problem}")
        rule["conditions"] = copy.deepcopy(conditions)
    return rule


def _custom(user_rules: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    custom = user_rules.get("custom") or {}
    rules: list[dict[str, Any]] = custom.get(kind) or []
    return rules


def _index_of(rules: list[dict[str, Any]], rule_id: str) -> int | None:
    for i, rule in enumerate(rules):
        if rule.get("rule_id") == rule_id:
            return i
    return None


def _anchor_index(kind: str, rules: list[dict[str, Any]], anchor: str) -> int:
    if is_default_rule_id(kind, anchor):
        raise MatrixError(
            Errcode.INVALID_PARAM, "A rule cannot be placed relative to a predefined rule"
        )
    index = _index_of(rules, anchor)
    if index is None:
        raise MatrixError(Errcode.UNKNOWN, f"before/after rule not found: {anchor}", status=400)
    return index


def _editable(user_rules: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(user_rules))
    result.setdefault("custom", {})
    result.setdefault("defaults", {})
    return result


def add_rule(
    user_rules: Mapping[str, Any],
    kind: str,
    rule_id: str,
    body: Any,
    before: str | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}: create or replace a user rule.

    A new rule without before/after becomes the most important user rule of its kind; a
    replaced one keeps its place and its enabled flag unless before/after move it. With both,
    `before` wins (pushrules.yaml).
    """
    check_kind(kind)
    _check_new_rule_id(kind, rule_id)
    new_rule = _rule_from_body(kind, rule_id, body)
    result = _editable(user_rules)
    rules = list(result["custom"].get(kind) or [])
    existing = _index_of(rules, rule_id)
    if existing is not None:
        new_rule["enabled"] = rules[existing].get("enabled", True)

    if before is None and after is None:
        if existing is not None:
            rules[existing] = new_rule
        else:
            rules.insert(0, new_rule)
    else:
        if rule_id in (before, after):
            raise MatrixError(Errcode.INVALID_PARAM, "A rule cannot be placed relative to itself")
        if existing is not None:
            del rules[existing]
        if before is not None:
            rules.insert(_anchor_index(kind, rules, before), new_rule)
        else:
            assert after is not None
            rules.insert(_anchor_index(kind, rules, after) + 1, new_rule)
    result["custom"][kind] = rules
    return result


def delete_rule(user_rules: Mapping[str, Any], kind: str, rule_id: str) -> dict[str, Any]:
    """DELETE /_matrix/client/v3/pushrules/global/{kind}/{ruleId}"""
    check_kind(kind)
    if is_default_rule_id(kind, rule_id):
        raise MatrixError(Errcode.INVALID_PARAM, "Predefined rules cannot be deleted")
    rules = _custom(user_rules, kind)
    index = _index_of(rules, rule_id)
    if index is None:
        raise _not_found()
    result = _editable(user_rules)
    del result["custom"][kind][index]
    return result


def _set_attr(user_rules: Mapping[str, Any], kind: str, rule_id: str, attr: str, value: Any) -> dict[str, Any]:
    check_kind(kind)
    if is_default_rule_id(kind, rule_id):
        result = _editable(user_rules)
        result["defaults"].setdefault(kind, {}).setdefault(rule_id, {})[attr] = value
        return result
    index = _index_of(_custom(user_rules, kind), rule_id)
    if index is None:
        raise _not_found()
    result = _editable(user_rules)
    result["custom"][kind][index][attr] = value
    return result


def set_enabled(user_rules: Mapping[str, Any], kind: str, rule_id: str, enabled: Any) -> dict[str, Any]:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled"""
    if not isinstance(enabled, bool):
        raise MatrixError(Errcode.BAD_JSON, "'enabled' must be a boolean")
    return _set_attr(user_rules, kind, rule_id, "enabled", enabled)


def set_actions(user_rules: Mapping[str, Any], kind: str, rule_id: str, actions: Any) -> dict[str, Any]:
    """PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions (predefined rules too)."""
    return _set_attr(user_rules, kind, rule_id, "actions", clean_actions(actions))


def _present_custom(rule: Mapping[str, Any], kind: str) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "rule_id": rule["rule_id"],
        "default": False,
        "enabled": bool(rule.get("enabled", True)),
        "actions": copy.deepcopy(rule.get("actions", [])),
    }
    if kind == "content":
        shown["pattern"] = rule.get("pattern", "")
    elif kind in ("override", "underride"):
        shown["conditions"] = copy.deepcopy(rule.get("conditions", []))
    return shown


def _apply_default_changes(rule: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    if "enabled" in changes:
        rule["enabled"] = changes["enabled"]
    if "actions" in changes:
        rule["actions"] = copy.deepcopy(changes["actions"])
    return rule


def full_ruleset(user_id: str, user_rules: Mapping[str, Any]) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/ body, also the m.push_rules account data content.

    Per kind: user rules first, then the defaults, except that `.m.rule.master` outranks even the
    user's override rules (push.md §Predefined Rules).
    """
    changed = user_rules.get("defaults") or {}
    defaults = default_rules(user_id)
    ruleset: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        kind_changes = changed.get(kind) or {}
        shipped = [_apply_default_changes(r, kind_changes.get(r["rule_id"], {})) for r in defaults[kind]]
        head = [r for r in shipped if r["rule_id"] == MASTER_RULE_ID]
        tail = [r for r in shipped if r["rule_id"] != MASTER_RULE_ID]
        mine = [_present_custom(r, kind) for r in _custom(user_rules, kind)]
        ruleset[kind] = head + mine + tail
    return {"global": ruleset}


def get_rule(user_id: str, user_rules: Mapping[str, Any], kind: str, rule_id: str) -> dict[str, Any]:
    """GET /_matrix/client/v3/pushrules/global/{kind}/{ruleId} (and its /enabled, /actions)."""
    check_kind(kind)
    shipped = default_rule(user_id, kind, rule_id)
    if shipped is not None:
        changes = ((user_rules.get("defaults") or {}).get(kind) or {}).get(rule_id, {})
        return _apply_default_changes(shipped, changes)
    rules = _custom(user_rules, kind)
    index = _index_of(rules, rule_id)
    if index is None:
        raise _not_found()
    return _present_custom(rules[index], kind)
