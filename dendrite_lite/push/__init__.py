"""Push rules: the spec's default rules, per-user rule editing, and evaluation (no I/O)."""

from dendrite_lite.push.default_rules import DEFAULT_RULE_IDS, KINDS, default_rules
from dendrite_lite.push.evaluator import (
    NO_ACTIONS,
    Actions,
    CompiledRuleset,
    PreparedEvent,
    compile_ruleset,
    compiled_for_user,
    evaluate,
    prepare_event,
)
from dendrite_lite.push.ruleset import (
    add_rule,
    delete_rule,
    empty_user_rules,
    full_ruleset,
    get_rule,
    set_actions,
    set_enabled,
)

__all__ = [
    "KINDS",
    "DEFAULT_RULE_IDS",
    "default_rules",
    "Actions",
    "NO_ACTIONS",
    "CompiledRuleset",
    "PreparedEvent",
    "compile_ruleset",
    "compiled_for_user",
    "evaluate",
    "prepare_event",
    "empty_user_rules",
    "add_rule",
    "delete_rule",
    "set_enabled",
    "set_actions",
    "get_rule",
    "full_ruleset",
]
